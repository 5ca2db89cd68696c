// Package journal is kvrflow's durable record of every run, in a bbolt
// file.
//
// Buckets: meta (schema version, the journal's id, the chain's head and
// anchor), runs (id -> Run as JSON, rewritten at every transition),
// begins (id -> the run's begin record) and events/<id> (seq -> event),
// and inflight (id -> target of every run not yet ended, so recovery never
// decodes every run). Begin records and events are sealed: each is stored
// as its canonical JSON, a newline, and the hex SHA-256 of that JSON, and
// links to the one before it by that hash (see chain.go and DESIGN.md,
// "Journal hash chain"); the run record carries the chain's first and
// final hash and its count, so a run cut short or edited is seen.
//
// Each journal has an identity, ID: 16 lower-case hex digits from
// crypto/rand in meta/id, given when the journal is created (or, for a
// journal older than ids, at its first read-write open, in the same
// transaction as any migration) and never changed: other code names
// directories after it. Check, prune and migrate leave it alone (meta is
// not hash-chained).
//
// # Crash safety
//
// Each Begin and Append is one bbolt transaction, fsynced before it
// returns: after a crash the journal holds exactly the transactions that
// returned nil, and maybe the one in progress, whole or not at all. Append
// checks that a transition starts from the run's current state, so a
// journal can never record an impossible path.
//
// A new journal is built in a file of its own beside the path, created
// with O_EXCL (PATH.new-*), fsynced, and given the path with
// renameat2(RENAME_NOREPLACE) (or link(2) where that is not supported),
// then the directory is fsynced: a journal file that exists is whole, no
// file of the user's is ever removed or replaced, and of two processes
// creating a journal at once, one journal wins and both use it.
//
// InFlight, which recovery acts on, checks the in-flight index against
// the run records first: a run in flight by its record but not indexed,
// an index entry without its run record, or an ended run still indexed is
// ErrCorrupt naming the run. A run whose record is gone but whose begin
// record, events or index entry remain is ErrCorrupt too, never
// ErrNotFound.
//
// Check, CheckEach and Scan read the whole journal in one read
// transaction, one run at a time: CheckEach hands each run's events, as
// the chain check decoded them, to its caller (audit.Verify replays them),
// so no event is decoded twice. As they walk, they release the pages
// they have mapped every few hundred runs (madvise MADV_DONTNEED on
// bbolt's read-only mapping, see release.go), so the process's resident
// set does not grow to the size of the file.
//
// # Caveats
//
// bbolt holds an exclusive flock while the journal is open for writing: a
// second process waits up to Options.Timeout, then gets ErrLocked. A
// journal of a newer schema is refused with ErrNewerSchema, never
// rewritten. bbolt cannot go through kvrflow's file-system seam (it opens
// *os.File): crash tests copy the journal file at the crash instant.
//
// A crash while a journal is created may leave its temporary file,
// PATH.new-*, beside it; it is never opened as the journal (kvrflow's
// Clean leaves it in DB.kvrflow, as it leaves every bbolt file there: it
// may be a journal; an operator removes it).
//
// Full disks: a read-write Open keeps Options.Reserve bytes (DefaultReserve,
// 8 MiB) allocated with fallocate(2) in the journal file beyond the pages
// bbolt uses, which bbolt fills without growing the file, so a run can
// journal its failure and recovery its abort when another process filled
// the disk. The reserve is topped up at Open only; if fallocate fails
// (ENOSPC, or EOPNOTSUPP on a file system without it) Open still succeeds
// and Reserved says why. On a copy-on-write file system (btrfs, ZFS, or
// XFS with reflinked files) an overwrite allocates new blocks, so a full
// disk may still stop the journal there. The reserve makes the journal
// file (and every copy of it) that much larger.
package journal
