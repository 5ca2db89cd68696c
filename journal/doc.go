// Package journal is kvrflow's durable record of every run, in a bbolt
// file.
//
// Buckets: meta (schema version), runs (id -> Run as JSON), events (one
// nested bucket per run: seq -> Event as JSON) and inflight (id -> target
// of every run not yet ended, so recovery never scans every run).
//
// # Crash safety
//
// Each Begin and Append is one bbolt transaction, fsynced before it
// returns: after a crash the journal holds exactly the transactions that
// returned nil, and maybe the one in progress, whole or not at all. Append
// checks that a transition starts from the run's current state, so a
// journal can never record an impossible path.
//
// # Caveats
//
// bbolt holds an exclusive flock while the journal is open for writing: a
// second process waits up to Options.Timeout, then gets ErrLocked. A
// journal of a newer schema is refused with ErrNewerSchema, never
// rewritten. bbolt cannot go through kvrflow's file-system seam (it opens
// *os.File): crash tests copy the journal file at the crash instant.
package journal
