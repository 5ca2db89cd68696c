package fsx

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrSync is matched by every error of an fsync or fdatasync that failed
// (a file's, a directory's) and of the fault points just before one. After
// a failed fsync the kernel may have dropped the dirty pages and marked
// them clean, so a second fsync can succeed while the data is lost
// (PostgreSQL's "fsyncgate"): such an error is final, never retried as if
// the data could still be safe.
var ErrSync = errors.New("fsync failed")

// syncErr wraps err, an fsync's failure on path, as a *os.PathError that
// matches ErrSync.
func syncErr(op, path string, err error) error {
	return pathErr(op, path, fmt.Errorf("%w: %w", ErrSync, err))
}

// DirID returns the identity (device, inode) of path on any file system
// that reports one (the real disk, also under an errorfs), and nil where
// the file system has none (Pebble's in-memory file systems). It follows
// a symbolic link at path; callers that must not, check IsSymlink first.
func (fs *FS) DirID(path string) (*FileID, error) {
	fi, err := fs.v.Stat(path)
	if err != nil {
		return nil, pathErr("stat", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil
	}
	return &FileID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// SameID reports whether the identities a and b are known and equal; with
// either unknown (a file system without inodes) it reports unknown.
func SameID(a, b *FileID) (same, known bool) {
	if a == nil || b == nil {
		return false, false
	}
	return *a == *b, true
}

// IsMountPoint reports whether path, a directory, is the root of a mounted
// file system (on the real disk; never on the in-memory ones). It asks
// statx for STATX_ATTR_MOUNT_ROOT, which sees bind mounts too, and falls
// back to comparing path's device with its parent's.
func (fs *FS) IsMountPoint(path string) (bool, error) {
	if !fs.onDisk() {
		return false, nil
	}
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO, &stx)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	a, err1 := fs.DirID(path)
	b, err2 := fs.DirID(filepath.Dir(path))
	if err := errors.Join(err1, err2); err != nil {
		return false, err
	}
	if a == nil || b == nil {
		return false, nil
	}
	return a.Dev != b.Dev, nil
}

// LstatMode returns the type bits of path itself (see Lstat).
func (fs *FS) LstatMode(path string) (os.FileMode, error) {
	fi, err := fs.Lstat(path)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Type(), nil
}

// RemoveEmptyDir removes dir if it is an empty directory, then fsyncs its
// parent, and reports whether it removed it. A directory with anything in
// it is left as it is: removing an empty directory loses no data, so it
// needs no proof of ownership. A dir that does not exist is not removed.
func (fs *FS) RemoveEmptyDir(dir string) (bool, error) {
	names, err := fs.v.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, pathErr("list", dir, err)
	}
	if len(names) > 0 {
		return false, nil
	}
	if err := fs.faults.Hit(PointBeforeRemove); err != nil {
		return false, pathErr("remove", dir, err)
	}
	if err := fs.v.Remove(dir); err != nil {
		return false, pathErr("remove", dir, err)
	}
	return true, fs.SyncDir(filepath.Dir(dir))
}

// DisableExchange makes Exchange report ErrExchangeUnsupported, so that
// commits use two renames even on the real disk: for tests of that plan,
// and for file systems whose RENAME_EXCHANGE an operator distrusts.
func (fs *FS) DisableExchange() { fs.noExchange = true }

// CanExchange reports whether Exchange may swap directories atomically
// here: the real disk, with exchange not disabled.
func (fs *FS) CanExchange() bool { return fs.disk && !fs.noExchange }

// ErrMountBelow is returned by RemoveAllDurable, having removed nothing,
// when a file system is mounted somewhere below the tree: removing the
// tree would delete that file system's files, which are not the tree's.
var ErrMountBelow = errors.New("a file system is mounted below")

// MountsBelow returns the directories below dir (dir excluded) that are
// mount points, on the real disk, not following symbolic links. A dir
// that does not exist has none.
func (fs *FS) MountsBelow(dir string) ([]string, error) {
	if !fs.onDisk() {
		return nil, nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == dir || !d.IsDir() {
			return nil
		}
		if mnt, err := fs.IsMountPoint(p); err != nil {
			return err
		} else if mnt {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, pathErr("walk", dir, err)
	}
	return out, nil
}
