// Package audit reads a kvrflow journal and says what it holds and
// whether it can be trusted: Verify checks every hash chain and replays
// every run through its workflow's state machine; Replay rebuilds one run
// step by step with what recovery would have done at each point; Graph
// draws a workflow with a run's path marked; Export writes the journal in
// the versioned export schema (DESIGN.md, "Export format"); Report writes
// one self-contained HTML page.
//
// A run is replayed through the workflow its Kind names, looked up in a
// Workflows map (Default has every workflow kvrflow runs): a run of a
// kind the map lacks is a problem Verify reports, never a crash.
//
// # Crash safety
//
// Every function here opens the journal read-only (a shared lock) and
// writes nothing to it: it may run beside a restore, waiting at most
// journal.DefaultTimeout for the lock, and a crash of it changes nothing.
// Report and Export write only to the io.Writer they are given.
//
// # Caveats
//
// Memory: Verify decodes each event once and holds one run's events at a
// time, plus a few words per run; Export's ndjson and csv formats write
// each run's events as they are read, and its json format holds one run
// at a time; Report holds one duration per ended run and the timelines of
// the runs it shows in detail (DefaultRecent, or the runs selected). The
// journal is read through bbolt's mmap: the pages read count in the
// process's resident memory as page cache, not as heap, and the kernel
// may drop them.
//
// A journal of an older schema is refused with journal.ErrOldSchema (only
// a read-write open migrates it).
package audit
