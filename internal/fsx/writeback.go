package fsx

import (
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// WritebackChunk is how many bytes CopyFile writes between two requests to
// the kernel to start writing them back (sync_file_range). At most about
// two chunks of a copy are dirty in the page cache at any time, so the
// final fsync of a file of any size writes little, and an interrupted
// copy stops without waiting for gigabytes of writeback. The pages of
// chunks written back are dropped from the page cache, so removing an
// interrupted copy does not free gigabytes of them either.
const WritebackChunk = 8 << 20

// writeback starts the writeback of what CopyFile writes, chunk by chunk,
// on the real disk; on other file systems (no file descriptor) it does
// nothing. It only schedules and waits for I/O: durability still comes
// from the fsync after the copy.
type writeback struct {
	fd         int   // -1: nothing to do
	done, prev int64 // bytes handed to the kernel; start of the chunk in flight
	off        int64 // bytes written
}

func newWriteback(f vfs.File) *writeback {
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return &writeback{fd: -1}
	}
	return &writeback{fd: int(fd), prev: -1}
}

// wrote records n more bytes written. Once a chunk is complete, it starts
// that chunk's writeback (SYNC_FILE_RANGE_WRITE: it does not wait) and
// waits for the writeback of the chunk before it, which bounds the dirty
// bytes to two chunks and paces the copy to the disk, then drops that
// chunk's clean pages from the page cache.
func (w *writeback) wrote(n int) {
	if w.fd < 0 {
		return
	}
	w.off += int64(n)
	if w.off-w.done < WritebackChunk {
		return
	}
	if err := unix.SyncFileRange(w.fd, w.done, w.off-w.done, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		w.fd = -1 // not supported here (ENOSYS, EINVAL): the fsync does it all
		return
	}
	if w.prev >= 0 {
		err := unix.SyncFileRange(w.fd, w.prev, w.done-w.prev,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err == nil {
			// Written back, its pages are clean: drop them, so that the
			// copy does not fill the page cache and removing an
			// interrupted copy has no gigabytes of pages to free.
			_ = unix.Fadvise(w.fd, w.prev, w.done-w.prev, unix.FADV_DONTNEED)
		}
	}
	w.prev, w.done = w.done, w.off
}
