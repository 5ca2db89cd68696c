// Package chaos is the harness of kvrflow chaos, the operator's self-test
// of kvrflow on a machine's own storage: in a scratch directory it makes
// an old database (and, unless given a backup, a sample backup), then in
// each Iteration resets the old database, runs `kvrflow restore` in a
// child process, kills it (SIGKILL) at a random named fault point, on the
// clean path or on the rollback path, or at a random moment, recovers,
// and checks the invariant with package check, by file digests (byte for
// byte): the database is the one the journal the kill left decides,
// complete, and the journal agrees. Summary counts the iterations.
//
// The command line, its flags and its --json document are
// cmd/kvrflow/chaos.go's; this package has the logic.
//
// # Crash safety
//
// The harness only ever writes below its scratch directory, and only in
// the entries it makes there (work, pristine, sample-src, sample-backup):
// Scratch refuses a directory that is not new or empty, and its cleanup
// removes those entries, not the directory. A backup given with From is
// only read.
//
// # Caveats
//
// The timer kills sleep a random time below the duration of a clean
// restore measured by New: on a loaded machine more restores finish
// before the kill (they still are checked). They are not repeatable: the
// same seed picks the same delay, but not the same moment of the restore;
// Iteration.Repeatable says so. Every other choice (which iterations are
// timer kills, which point at which hit) is the seed's, so a run with the
// same seed, binary and backup kills at the same points in the same order. Fault points are picked from
// the hits of an in-process restore of the same backup, so a point only
// the child's path passes is never picked.
package chaos
