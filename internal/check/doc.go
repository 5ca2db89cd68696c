// Package check is kvrflow's one checker of its central invariant: after
// any restore, killed or not, and the recovery after it, the database
// directory DB is the old database or the new one (the backup's),
// complete, and the journal agrees: nothing is in flight, the newest run
// committed exactly when DB is the new database, its events form an
// unbroken chain, and no staging or displaced old directory is left.
//
// Every test that checks the invariant uses it (the power-loss and
// double-crash matrices on Pebble's crashable memory file system, the
// process tests that kill the kvrflow binary), and so does the operator's
// self-test, kvrflow chaos (package internal/chaos), on the real disk.
// It is its own package, apart from the chaos harness, because the root
// package's tests use it and the harness imports the root package.
//
// A Target names DB, the file system it is on and the journal, and
// describes the two databases DB may hold: by their keys and values
// (opened read-only with Pebble), by their files (Digest: byte for byte),
// or both, or as absent (a restore into a new directory). Expect reads
// the journal a kill left and says which database recovery must leave:
// the new one exactly when the run's commit point record (commit
// -committed-> finish) is durable. Recovered checks the invariant after
// recovery and says which database DB holds; the caller compares it with
// what Expect said.
//
// # Crash safety
//
// The checker only reads. The journal is opened read-only, with a shared
// lock: a kvrflow still running holds it exclusively, and the checker
// then waits up to JournalTimeout and fails.
//
// # Caveats
//
// The journal is always on the real disk (bbolt needs it), even when DB
// is on a memory file system. Opening DB with Pebble read-only creates an
// empty LOCK file; Digest leaves LOCK out for that reason. A Target's Old
// and New must differ, or there is nothing to tell apart: Which reports
// it as an error.
package check
