package fsx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// ErrNotRegular is returned (wrapped, naming the path and what it is: "is
// a FIFO") when a path that must be a regular file, or a directory on the
// way to one, is something else: a FIFO, a device, a socket, a directory
// or a symbolic link.
var ErrNotRegular = errors.New("not a regular file")

// ErrGrew is returned by CopyFile and Checksum when a file holds more than
// the Want.Size bytes expected; the bytes after Size+1 are not read.
var ErrGrew = errors.New("file longer than expected")

// ErrReplaced is returned by CopyFile and Checksum when the file opened is
// not the one Want.ID names: it was replaced since it was checked.
var ErrReplaced = errors.New("file replaced since it was checked")

// onDisk reports whether the file system below the seam, under any
// wrappers that expose Unwrap (errorfs does), is the real disk.
func (fs *FS) onDisk() bool { return vfs.Root(fs.v) == vfs.Root(vfs.Default) }

// Lstat returns the file info of path itself, not following a final
// symbolic link: on the real disk, also under a wrapper such as errorfs
// (whose injector does not see the call); elsewhere Stat (the in-memory
// file systems have no symbolic links).
func (fs *FS) Lstat(path string) (os.FileInfo, error) {
	if !fs.onDisk() {
		return fs.Stat(path)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, pathErr("lstat", path, err)
	}
	return fi, nil
}

// KindOf names the type of file m says: "a regular file", "a directory",
// "a symbolic link", "a FIFO", "a socket", "a character device", "a block
// device".
func KindOf(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "an irregular file"
}

// CheckRegular checks, without opening anything, that rel (a relative
// path, "/"-separated) names a regular file under root, reached through
// directories only: no component between root and the file is a
// symbolic link or anything but a directory, and the file itself is a
// regular file, not a symbolic link. root itself is not checked (the
// caller resolves it once). It returns the file's info. A path of
// another type is an error matching ErrNotRegular that names it and its
// type; a missing one matches os.ErrNotExist. It changes nothing.
func (fs *FS) CheckRegular(root, rel string) (os.FileInfo, error) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	p := root
	for i, part := range parts {
		p = filepath.Join(p, part)
		fi, err := fs.Lstat(p)
		if err != nil {
			return nil, err
		}
		last := i == len(parts)-1
		if (last && !fi.Mode().IsRegular()) || (!last && (!fi.IsDir() || fi.Mode()&os.ModeSymlink != 0)) {
			return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, p, KindOf(fi.Mode()))
		}
		if last {
			return fi, nil
		}
	}
	return nil, pathErr("check", filepath.Join(root, rel), os.ErrInvalid) // rel was empty
}

// CheckDir checks that path is a directory and not a symbolic link to
// one, as CheckRegular checks a file (an error matching ErrNotRegular
// says what it is instead). It changes nothing.
func (fs *FS) CheckDir(path string) error {
	fi, err := fs.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s is %s, not a directory", ErrNotRegular, path, KindOf(fi.Mode()))
	}
	return nil
}

// Want is what a file must be for CopyFile and Checksum to read it. The
// zero Want asks only that it be a regular file.
type Want struct {
	// ID, when not zero, is the identity the file had when it was checked
	// (Ident): a file opened with another identity was replaced since
	// (ErrReplaced). It is compared only where the file system has one.
	ID FileID
	// Size, when Sized, is the size the file should have: at most Size+1
	// bytes are read (the one more detects growth), and a file longer
	// than Size is ErrGrew without the rest of it being read.
	Size  int64
	Sized bool
}

// limit returns the part of buf to read into after read bytes.
func (w Want) limit(buf []byte, read int64) []byte {
	if left := w.Size + 1 - read; w.Sized && left < int64(len(buf)) {
		return buf[:max(left, 0)]
	}
	return buf
}

// grew returns an ErrGrew error if w is Sized and size exceeds it.
func (w Want) grew(path string, size int64) error {
	if w.Sized && size > w.Size {
		return fmt.Errorf("%w: %s: more than the %d bytes expected (it grew)", ErrGrew, path, w.Size)
	}
	return nil
}

// readFile is what the readers of the seam need of an open file.
type readFile interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// openRegular opens path for reading and checks, with the open file's
// own stat, that it is a regular file and, if want.ID is set, the one
// checked. It returns the file and its size.
//
// On the real disk (the seam over vfs.Default) the file is opened with
// O_NOFOLLOW|O_NONBLOCK, so that a symbolic link swapped in is not
// followed and a FIFO swapped in cannot block the open (a FIFO opened
// for reading with O_NONBLOCK returns at once; its stat then refuses
// it); O_NONBLOCK is cleared again before any read. Under a wrapper
// (errorfs, in tests) the open goes through the wrapper so that its
// injector sees it: the path is Lstat'ed first (a FIFO already there is
// refused before it is opened), but one swapped in between that check
// and the open could block; the stat after the open still refuses it.
func (fs *FS) openRegular(path string, want Want) (readFile, int64, error) {
	if fs.disk {
		return openRegularDisk(path, want)
	}
	if fs.onDisk() {
		fi, err := fs.Lstat(path)
		if err != nil {
			return nil, 0, err
		}
		if !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, KindOf(fi.Mode()))
		}
	}
	f, err := fs.v.Open(path, vfs.SequentialReadsOption)
	if err != nil {
		return nil, 0, pathErr("open", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, pathErr("stat", path, err)
	}
	var id FileID
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = FileID{Dev: uint64(st.Dev), Ino: st.Ino}
	}
	if err := checkOpened(path, fi.Mode(), id, want); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// openRegularDisk is openRegular on the real disk.
func openRegularDisk(path string, want Want) (readFile, int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) { // O_NOFOLLOW on a symbolic link
		return nil, 0, fmt.Errorf("%w: %s is a symbolic link", ErrNotRegular, path)
	}
	if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
		// A socket (or a device without a driver) cannot be opened:
		// say what it is.
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, KindOf(fi.Mode()))
		}
	}
	if err != nil {
		return nil, 0, pathErr("open", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, pathErr("stat", path, err)
	}
	mode := statMode(st.Mode)
	if err := checkOpened(path, mode, FileID{Dev: st.Dev, Ino: st.Ino}, want); err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, 0, pathErr("open", path, err)
	}
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL) // a hint: its failure changes nothing
	return os.NewFile(uintptr(fd), path), st.Size, nil
}

// checkOpened checks an opened file's type and identity against want.
func checkOpened(path string, mode os.FileMode, id FileID, want Want) error {
	if !mode.IsRegular() {
		return fmt.Errorf("%w: %s is %s", ErrNotRegular, path, KindOf(mode))
	}
	if want.ID != (FileID{}) && id != (FileID{}) && id != want.ID {
		return fmt.Errorf("%w: %s: opened inode %d on device %d, checked inode %d on device %d", ErrReplaced, path, id.Ino, id.Dev, want.ID.Ino, want.ID.Dev)
	}
	return nil
}

// OpenRegular opens path for reading, as CopyFile opens its source: it
// must be a regular file (ErrNotRegular otherwise, checked on the open
// file, and on the real disk without following a symbolic link or
// blocking on a FIFO). The caller closes it.
func (fs *FS) OpenRegular(path string) (io.ReadCloser, error) {
	f, _, err := fs.openRegular(path, Want{})
	return f, err
}

// ResolveRoot returns path with its symbolic links resolved on the real
// disk (also under a wrapper), so that a directory the operator gave
// through a symbolic link is read at one place for the whole run; on the
// in-memory file systems, path itself.
func (fs *FS) ResolveRoot(path string) (string, error) {
	if !fs.onDisk() {
		return path, nil
	}
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", pathErr("resolve", path, err)
	}
	return r, nil
}

// statMode turns a stat(2) mode into an os.FileMode's type and
// permission bits.
func statMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	default:
		mode |= os.ModeIrregular
	}
	return mode
}
