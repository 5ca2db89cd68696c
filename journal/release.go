package journal

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseEvery is how many runs a walk of the journal (Scan, CheckEach)
// reads between two releases of the pages it has mapped.
const releaseEvery = 256

// release tells the kernel that this process no longer needs the pages of
// the journal mapped so far (madvise MADV_DONTNEED on bbolt's read-only
// shared mapping). They stay in the page cache but leave the process's
// resident set, which a walk of a large journal would otherwise grow to
// the whole file: each page fault also maps the cached pages around it
// (fault-around), and a run's records are spread over the file. It is
// safe in a transaction: bbolt never writes through the mapping, and a
// page touched again is faulted back in from the file, whose content no
// writer changes while this transaction is open. Best effort: an error is
// ignored (the pages merely stay mapped).
func (j *Journal) release(tx *bolt.Tx) {
	info := j.db.Info()
	// The mapping starts page-aligned at info.Data and is at least as long
	// as the pages in use, tx.Size().
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, info.Data, uintptr(tx.Size()), unix.MADV_DONTNEED)
}
