package journal

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// DefaultReserve is the room a read-write Open keeps allocated in the
// journal file beyond the pages bbolt uses, when Options.Reserve is 0:
// enough for thousands of records (a run journals about ten), so that a
// run can journal its failure and recovery its abort on a full disk.
const DefaultReserve int64 = 8 << 20

// NoReserve, as Options.Reserve, makes Open reserve no room: the journal
// then needs free space on its file system for every record that grows
// it.
const NoReserve int64 = -1

// Reserved reports the room this handle's Open made sure of: how many
// bytes of the journal file beyond bbolt's high-water mark were allocated
// when it opened (at least Options.Reserve if err is nil), and why it
// could not allocate Options.Reserve of them (an error naming the journal
// and wrapping the errno, such as unix.ENOSPC or unix.EOPNOTSUPP).
// An error here is not the journal's: it works as without a reserve, and
// bytes is the room it still had (0 if unknown). A read-only handle, or
// Options.Reserve NoReserve, reports 0, nil. The reserve is topped up at
// Open only, so bytes is not updated as records use the room.
func (j *Journal) Reserved() (bytes int64, err error) { return j.reserved, j.reserveErr }

// reserve makes sure the journal file has want bytes (DefaultReserve if
// 0, none if negative) of blocks allocated beyond bbolt's high-water mark,
// and records the outcome for Reserved. When less is there it allocates
// want and an eighth more, then fsyncs the file: the allocation and the
// file's new size are durable. It never fails Open: the reserve is a
// margin for a full disk, and a journal that cannot have one is as usable
// as before (a failed fallocate changes no byte of the journal's pages;
// it may leave part of the range allocated, which only helps).
//
// Why this works (bbolt v1.4.3, db.go and tx.go): bbolt writes every page
// with pwrite at pgid × page size (Tx.write → db.ops.writeAt), and grows
// the file only in Tx.Commit, when the high-water mark (meta.pgid) moved
// past it: DB.grow returns at once when the size it needs is within the
// file ("if sz <= fileSize { return nil }"), and otherwise ftruncates the
// file larger, a sparse extension whose blocks a full disk cannot supply.
// bbolt never truncates a file down (grow is its only Truncate on Linux,
// and only to a larger size), and mmaps the file's size rounded up,
// reading nothing past the high-water mark. So pages written below the
// end of a file whose blocks fallocate(2) allocated need no new blocks,
// and the journal can take Reserve bytes of records on a full disk. On a
// copy-on-write file system (btrfs, ZFS) an overwrite still allocates new
// blocks: there the reserve helps less.
func (j *Journal) reserve(want int64) {
	switch {
	case want < 0:
		return
	case want == 0:
		want = DefaultReserve
	}
	j.reserved, j.reserveErr = j.allocate(want)
	if j.reserveErr != nil {
		j.reserveErr = fmt.Errorf("reserve %d bytes in journal %s: %w", want, j.path, j.reserveErr)
	}
}

// allocate does reserve's work and returns the room allocated beyond the
// high-water mark.
func (j *Journal) allocate(want int64) (int64, error) {
	var used int64
	if err := j.view(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	// Topping up allocates an eighth more than want, so that the next
	// opens, after a few records moved the high-water mark, find want
	// still there and need neither fallocate nor fsync.
	page := int64(j.db.Info().PageSize)
	target := (used + want + want/8 + page - 1) / page * page
	f, err := os.OpenFile(j.path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	// room is the allocated room beyond used: the whole tail of a file
	// with no holes (st_blocks covers its size), or 0 if it may have
	// holes (bbolt's grow leaves them).
	room := func() (int64, error) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, os.NewSyscallError("fstat", err)
		}
		if st.Blocks*512 < st.Size || st.Size < used {
			return 0, nil
		}
		return st.Size - used, nil
	}
	have, err := room()
	if err != nil || have >= want {
		return have, err // most opens: nothing to allocate, nothing to sync
	}
	for {
		// Mode 0 allocates every block of [0, target) not yet allocated,
		// the holes bbolt's grow left included, and extends the size.
		err = unix.Fallocate(fd, 0, 0, target)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return have, os.NewSyscallError("fallocate", err)
	}
	if err := f.Sync(); err != nil {
		return have, fmt.Errorf("sync: %w", err)
	}
	return room()
}
