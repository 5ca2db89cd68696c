package fsx

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive open-file-description lock (fcntl
// F_OFD_SETLK, whole file) on path, creating it if needed, on the real
// disk. It never follows a symbolic link (O_NOFOLLOW), never truncates,
// never blocks on a FIFO (O_NONBLOCK), and refuses anything but a regular
// file with one link: a LOCK that is a symbolic or hard link to another
// file would otherwise be created, truncated or locked in its place.
//
// An OFD lock conflicts with the classic fcntl locks Pebble and RocksDB
// take (F_SETLK), in another process and in this one, and closing another
// descriptor of the file does not drop it, as it would a classic lock.
func lockFile(path string) (io.Closer, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.ELOOP) {
		return nil, pathErr("lock", path, fmt.Errorf("%w: it is a symbolic link; kvrflow locks only a regular file and never follows a link", ErrNotRegular))
	}
	if err != nil {
		return nil, pathErr("lock", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, pathErr("lock", path, err)
	}
	mode := statMode(st.Mode)
	if !mode.IsRegular() {
		f.Close()
		return nil, pathErr("lock", path, fmt.Errorf("%w: it is %s", ErrNotRegular, KindOf(mode)))
	}
	if st.Nlink > 1 {
		f.Close()
		return nil, pathErr("lock", path, fmt.Errorf("%w: it has %d hard links; a lock file has one (locking it would touch another file)", ErrNotRegular, st.Nlink))
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%w: %w", ErrLockHeld, err)
		}
		return nil, pathErr("lock", path, err)
	}
	return f, nil
}
