package fsx

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// Castagnoli is the crc32c table every checksum of kvrflow uses.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrExchangeUnsupported is returned by Exchange when the file system below
// cannot swap two directories atomically (anything but the real disk on
// Linux, or a Linux file system without RENAME_EXCHANGE).
var ErrExchangeUnsupported = errors.New("atomic exchange not supported")

// ErrNoFileID is returned by FileID when the file system has no stable
// identity (device, inode) for its entries, as the in-memory ones do not.
var ErrNoFileID = errors.New("file identity not available")

// ErrLockHeld is returned by Lock when another process, or this one,
// holds the lock.
var ErrLockHeld = errors.New("lock held")

// Fault points of the seam, hit around each durable operation.
var (
	PointBeforeFileSync = fault.Register("fs.before-file-sync", "before a copied file is fsynced")
	PointAfterFileSync  = fault.Register("fs.after-file-sync", "after a copied file is fsynced")
	PointBeforeDirSync  = fault.Register("fs.before-dir-sync", "before a directory is fsynced")
	PointAfterDirSync   = fault.Register("fs.after-dir-sync", "after a directory is fsynced")
	PointBeforeRename   = fault.Register("fs.before-rename", "before a rename")
	PointAfterRename    = fault.Register("fs.after-rename", "after a rename, before its directories are fsynced")
	PointBeforeExchange = fault.Register("fs.before-exchange", "before renameat2(RENAME_EXCHANGE)")
	PointAfterExchange  = fault.Register("fs.after-exchange", "after the exchange, before its directories are fsynced")
	PointBeforeRemove   = fault.Register("fs.before-remove", "before a directory tree is removed")
	PointAfterRemove    = fault.Register("fs.after-remove", "after a directory tree is removed, before its parent is fsynced")
	PointBeforeLink     = fault.Register("fs.before-link", "before a hard link is made")
	PointWrite          = fault.Register("fs.write", "each buffer written while copying a file")
	PointReadBack       = fault.Register("fs.read-back", "before a copied, fsynced file is read back from the device (--verify full)")
)

// FS is kvrflow's file-system seam: every file operation of the steps goes
// through it. It wraps a Pebble vfs.FS (the real disk, a crashable MemFS or
// an errorfs) and adds durable helpers that fsync what they change.
type FS struct {
	v      vfs.FS
	faults *fault.Set
	disk   bool
	// noExchange: DisableExchange was called.
	noExchange bool

	fileSyncs atomic.Int64
	dirSyncs  atomic.Int64
}

// New returns a seam over v. Exchange is attempted only when v is the real
// disk (vfs.Default), because it bypasses v.
func New(v vfs.FS, faults *fault.Set) *FS {
	return &FS{v: v, faults: faults, disk: v == vfs.Default}
}

// VFS returns the file system below, for Pebble (Verify, backup).
func (fs *FS) VFS() vfs.FS { return fs.v }

// Faults returns the fault set the seam hits (nil when none).
func (fs *FS) Faults() *fault.Set { return fs.faults }

// Syncs returns how many files and directories were fsynced so far.
func (fs *FS) Syncs() (files, dirs int64) { return fs.fileSyncs.Load(), fs.dirSyncs.Load() }

// pathErr wraps err as a *os.PathError naming op and path, without
// repeating a path the error already names.
func pathErr(op, path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

// Stat returns the file info of path.
func (fs *FS) Stat(path string) (os.FileInfo, error) {
	fi, err := fs.v.Stat(path)
	if err != nil {
		return nil, pathErr("stat", path, err)
	}
	return fi, nil
}

// Exists reports whether path exists. Errors other than not-exist are
// returned.
func (fs *FS) Exists(path string) (bool, error) {
	_, err := fs.v.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, pathErr("stat", path, err)
}

// List returns the names in dir.
func (fs *FS) List(dir string) ([]string, error) {
	names, err := fs.v.List(dir)
	if err != nil {
		return nil, pathErr("list", dir, err)
	}
	return names, nil
}

// Open opens path for reading.
func (fs *FS) Open(path string) (vfs.File, error) {
	f, err := fs.v.Open(path)
	if err != nil {
		return nil, pathErr("open", path, err)
	}
	return f, nil
}

// Lock takes the advisory lock on path (creating the file if needed). It
// fails at once if another process, or this one, holds it, with an error
// matching ErrLockHeld. On the real disk (see lockFile) it follows no
// symbolic link, truncates nothing, and refuses (ErrNotRegular) a path
// that is not a regular file with one link.
func (fs *FS) Lock(path string) (io.Closer, error) {
	if fs.onDisk() {
		return lockFile(path)
	}
	l, err := fs.v.Lock(path)
	if err != nil {
		// fcntl reports a lock held elsewhere as EAGAIN or EACCES; Pebble
		// reports one held by this process with an unexported error whose
		// text is all there is to match.
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
			strings.Contains(err.Error(), "held by current process") {
			err = fmt.Errorf("%w: %w", ErrLockHeld, err)
		}
		return nil, pathErr("lock", path, err)
	}
	return l, nil
}

// DiskUsage reports the space on the file system holding path.
func (fs *FS) DiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := fs.v.GetDiskUsage(path)
	if err != nil {
		return u, pathErr("disk usage", path, err)
	}
	return u, nil
}

// FileID is the identity of a file or directory: it survives renames.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// FileID returns the identity of path, or ErrNoFileID when the file system
// below has none.
func (fs *FS) FileID(path string) (FileID, error) {
	fi, err := fs.v.Stat(path)
	if err != nil {
		return FileID{}, pathErr("stat", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fs.disk {
		return FileID{}, pathErr("stat", path, ErrNoFileID)
	}
	return FileID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// Ident identifies a file's content without reading it: its FileID (zero
// where the file system has no inodes), size and modification time. A
// file replaced (by a rename) gets another FileID; one written in place
// another ModTime.
type Ident struct {
	ID      FileID
	Size    int64
	ModTime time.Time
}

// Equal reports whether a and b are the same file, unchanged.
func (a Ident) Equal(b Ident) bool {
	return a.ID == b.ID && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
}

// Ident returns the identity of the file at path.
func (fs *FS) Ident(path string) (Ident, error) {
	fi, err := fs.v.Stat(path)
	if err != nil {
		return Ident{}, pathErr("stat", path, err)
	}
	id := Ident{Size: fi.Size(), ModTime: fi.ModTime()}
	// Unlike FileID, any file system that reports a real inode will do
	// (the disk under an errorfs, say): Ident only compares.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ID = FileID{Dev: uint64(st.Dev), Ino: st.Ino}
	}
	return id, nil
}

// Links returns the number of names (hard links) the file at path has;
// known is false on a file system that does not report it (the in-memory
// ones).
func (fs *FS) Links(path string) (n uint64, known bool, err error) {
	fi, err := fs.v.Stat(path)
	if err != nil {
		return 0, false, pathErr("stat", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink), true, nil
	}
	return 0, false, nil
}

// SyncDir fsyncs dir so that entries created, renamed or removed in it are
// durable. Safe to retry.
func (fs *FS) SyncDir(dir string) error {
	if err := fs.faults.Hit(PointBeforeDirSync); err != nil {
		return syncErr("sync dir", dir, err)
	}
	d, err := fs.v.OpenDir(dir)
	if err != nil {
		return pathErr("sync dir", dir, err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil {
		return syncErr("sync dir", dir, err)
	}
	if cerr != nil {
		return pathErr("sync dir", dir, cerr)
	}
	fs.dirSyncs.Add(1)
	return pathErrOrNil("sync dir", dir, fs.faults.Hit(PointAfterDirSync))
}

func pathErrOrNil(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return pathErr(op, path, err)
}

// MkdirDurable creates dir (which must not exist) and fsyncs it and its
// parent. On error, dir may or may not exist; a retry after removing it is
// safe.
func (fs *FS) MkdirDurable(dir string) error {
	if ok, err := fs.Exists(dir); err != nil {
		return err
	} else if ok {
		return pathErr("mkdir", dir, os.ErrExist)
	}
	if err := fs.v.MkdirAll(dir, 0o755); err != nil {
		return pathErr("mkdir", dir, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(dir))
}

// EnsureDir creates dir if it does not exist, durably (see MkdirDurable).
func (fs *FS) EnsureDir(dir string) error {
	ok, err := fs.Exists(dir)
	if err != nil || ok {
		return err
	}
	return fs.MkdirDurable(dir)
}

// RenameDurable renames oldpath to newpath, which must not exist, then
// fsyncs the new parent and then the old one. Syncing the destination's
// parent first means that after a power loss the entry is found under the
// new name, the old name, or both, never under neither.
//
// On error the rename may or may not have happened; the caller decides from
// what is on disk. A retry is safe once the caller has checked that.
func (fs *FS) RenameDurable(oldpath, newpath string) error {
	if ok, err := fs.Exists(newpath); err != nil {
		return err
	} else if ok {
		return pathErr("rename "+oldpath+" to", newpath, os.ErrExist)
	}
	if err := fs.faults.Hit(PointBeforeRename); err != nil {
		return pathErr("rename "+oldpath+" to", newpath, err)
	}
	if err := fs.v.Rename(oldpath, newpath); err != nil {
		return pathErr("rename "+oldpath+" to", newpath, err)
	}
	if err := fs.faults.Hit(PointAfterRename); err != nil {
		return pathErr("rename "+oldpath+" to", newpath, err)
	}
	return fs.syncParents(newpath, oldpath)
}

func (fs *FS) syncParents(first, second string) error {
	d1, d2 := filepath.Dir(first), filepath.Dir(second)
	if err := fs.SyncDir(d1); err != nil {
		return err
	}
	if d2 == d1 {
		return nil
	}
	return fs.SyncDir(d2)
}

// Exchange atomically swaps the directory entries a and b (both must
// exist) with renameat2(RENAME_EXCHANGE), then fsyncs both parents. It
// returns ErrExchangeUnsupported, having changed nothing, where the file
// system cannot do it. On another error the swap may or may not have
// happened: FileID tells.
func (fs *FS) Exchange(a, b string) error {
	if !fs.CanExchange() {
		return pathErr("exchange "+a+" with", b, ErrExchangeUnsupported)
	}
	if err := fs.faults.Hit(PointBeforeExchange); err != nil {
		return pathErr("exchange "+a+" with", b, err)
	}
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return pathErr("exchange "+a+" with", b, fmt.Errorf("%w: %w", ErrExchangeUnsupported, err))
	}
	if err != nil {
		return pathErr("exchange "+a+" with", b, err)
	}
	if err := fs.faults.Hit(PointAfterExchange); err != nil {
		return pathErr("exchange "+a+" with", b, err)
	}
	return fs.syncParents(b, a)
}

// RemoveAllDurable removes path and everything below it, then fsyncs its
// parent. Removing a path that does not exist succeeds. On error part of
// the tree may remain; a retry is safe.
func (fs *FS) RemoveAllDurable(path string) error {
	if mnt, err := fs.IsMountPoint(path); err != nil {
		return err
	} else if mnt {
		return pathErr("remove", path, fmt.Errorf("%w: %s is a mount point: unmount it first (nothing was removed)", ErrMountBelow, path))
	}
	if m, err := fs.MountsBelow(path); err != nil {
		return err
	} else if len(m) > 0 {
		return pathErr("remove", path, fmt.Errorf("%w: a file system is mounted at %s: unmount it first (nothing was removed)", ErrMountBelow, m[0]))
	}
	if err := fs.faults.Hit(PointBeforeRemove); err != nil {
		return pathErr("remove", path, err)
	}
	if err := fs.v.RemoveAll(path); err != nil {
		return pathErr("remove", path, err)
	}
	if err := fs.faults.Hit(PointAfterRemove); err != nil {
		return pathErr("remove", path, err)
	}
	return fs.SyncDir(filepath.Dir(path))
}

// Link hard-links oldpath as newpath. The caller fsyncs newpath's
// directory.
func (fs *FS) Link(oldpath, newpath string) error {
	if err := fs.faults.Hit(PointBeforeLink); err != nil {
		return pathErr("link "+oldpath+" to", newpath, err)
	}
	if err := fs.v.Link(oldpath, newpath); err != nil {
		return pathErr("link "+oldpath+" to", newpath, err)
	}
	return nil
}

// IsDisk reports whether the seam is over the real disk.
func (fs *FS) IsDisk() bool { return fs.disk }

// Resolve returns path with symbolic links resolved, on the real disk and
// where path exists; otherwise path itself.
func (fs *FS) Resolve(path string) string {
	if !fs.disk {
		return path
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// IsSymlink reports whether path itself is a symbolic link (on the real
// disk; the in-memory file systems have none).
func (fs *FS) IsSymlink(path string) (bool, error) {
	if !fs.disk {
		return false, nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return false, pathErr("lstat", path, err)
	}
	return fi.Mode()&os.ModeSymlink != 0, nil
}

// CheckWritable returns an error if dir cannot be written (read-only file
// system, or no permission), on the real disk.
func (fs *FS) CheckWritable(dir string) error {
	if !fs.disk {
		return nil
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return pathErr("write to", dir, err)
	}
	return nil
}
