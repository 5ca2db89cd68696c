package fsx

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// BufferSize is the size of the buffers used to copy and checksum files.
const BufferSize = 1 << 20

// CopyFile copies src to dst (which must not exist), computing the crc32c
// of the bytes as they are written, and fsyncs dst before closing it. It
// does not sync dst's directory: the caller syncs it once after all files.
// onBytes, if not nil, is called after each buffer with its length.
//
// src must be a regular file, checked on the open file itself (and, if
// want.ID is set, the file checked before: see Want and openRegular); a
// FIFO, device or other file is ErrNotRegular, read not at all. When
// want.Sized, at most want.Size+1 bytes are read and a longer file is
// ErrGrew. The copy starts writing back what it wrote as it goes (see
// WritebackChunk), so the final fsync is short whatever the size. When ctx
// is cancelled, the copy stops at the next buffer with an error matching
// ctx's cause, naming how many bytes were copied.
//
// On error dst may exist, partly written; it is left for the caller's
// cleanup of the directory it is in.
func (fs *FS) CopyFile(ctx context.Context, src, dst string, want Want, buf []byte, onBytes func(int)) (size int64, crc uint32, err error) {
	return fs.CopyFileFrom(ctx, src, dst, want, Resume{}, buf, onBytes)
}

// Resume continues a copy that an earlier one left part-way, and reports
// a long copy's progress durably.
type Resume struct {
	// Offset bytes of dst, whose crc32c is CRC, are durable and equal to
	// src's first Offset bytes (the caller checked): the copy writes from
	// there on. With Offset 0, dst is created (it must not exist).
	Offset int64
	CRC    uint32
	// Every, if above 0, makes the copy fdatasync dst every Every bytes
	// and then call Chunk with the bytes durable and their crc32c; an
	// error from Chunk stops the copy.
	Every int64
	Chunk func(offset int64, crc uint32) error
}

// CopyFileFrom is CopyFile continued from r.Offset: dst, which must hold
// at least r.Offset bytes, is opened for writing and written from
// r.Offset on with src's bytes from r.Offset on; the crc32c is continued
// from r.CRC, so what it returns is the whole file's; size counts the
// whole file too. Every r.Every bytes dst is fdatasynced and r.Chunk
// called. dst ends as long as src (a copy never writes past src's size,
// so a longer leftover cannot remain: the caller passes a dst no longer
// than src).
func (fs *FS) CopyFileFrom(ctx context.Context, src, dst string, want Want, r Resume, buf []byte, onBytes func(int)) (size int64, crc uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, pathErr("copy", src, context.Cause(ctx))
	}
	in, total, err := fs.openRegular(src, want)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	var out vfs.File
	if r.Offset > 0 {
		out, err = fs.v.OpenReadWrite(dst, vfs.WriteCategoryUnspecified)
	} else {
		out, err = fs.v.Create(dst, vfs.WriteCategoryUnspecified)
	}
	if err != nil {
		return 0, 0, pathErr("create", dst, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = pathErr("close", dst, cerr)
		}
	}()
	size, crc = r.Offset, r.CRC
	next := int64(-1)
	if r.Every > 0 && r.Chunk != nil {
		next = size + r.Every
	}
	wb := newWriteback(out)
	for {
		if err := ctx.Err(); err != nil {
			return size, crc, pathErr("copy "+src+" to", dst, fmt.Errorf("interrupted after %d of %d bytes: %w", size, total, context.Cause(ctx)))
		}
		var n int
		var rerr error
		if r.Offset > 0 {
			n, rerr = in.ReadAt(want.limit(buf, size), size)
		} else {
			n, rerr = in.Read(want.limit(buf, size))
		}
		if n > 0 {
			if err := want.grew(src, size+int64(n)); err != nil {
				return size, crc, err
			}
			crc = crc32.Update(crc, Castagnoli, buf[:n])
			if err := fs.faults.Hit(PointWrite); err != nil {
				return size, crc, pathErr("write", dst, err)
			}
			var werr error
			if r.Offset > 0 {
				_, werr = out.WriteAt(buf[:n], size)
			} else {
				_, werr = out.Write(buf[:n])
			}
			if werr != nil {
				return size, crc, pathErr("write", dst, werr)
			}
			size += int64(n)
			wb.wrote(n)
			if onBytes != nil {
				onBytes(n)
			}
			if next > 0 && size >= next && rerr == nil {
				if err := out.SyncData(); err != nil {
					return size, crc, syncErr("sync", dst, err)
				}
				fs.fileSyncs.Add(1)
				if err := r.Chunk(size, crc); err != nil {
					return size, crc, err
				}
				next = size + r.Every
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return size, crc, pathErr("read", src, rerr)
		}
	}
	if err := fs.faults.Hit(PointBeforeFileSync); err != nil {
		return size, crc, syncErr("sync", dst, err)
	}
	if err := out.Sync(); err != nil {
		return size, crc, syncErr("sync", dst, err)
	}
	fs.fileSyncs.Add(1)
	if err := fs.faults.Hit(PointAfterFileSync); err != nil {
		return size, crc, pathErr("sync", dst, err)
	}
	return size, crc, nil
}

// Checksum reads path to its end and returns its size and crc32c. path
// must be a regular file and is checked against want as CopyFile checks
// its source (ErrNotRegular, ErrReplaced, ErrGrew); when ctx is cancelled
// it stops at the next buffer with an error matching ctx's cause.
func (fs *FS) Checksum(ctx context.Context, path string, want Want, buf []byte) (size int64, crc uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, pathErr("checksum", path, context.Cause(ctx))
	}
	f, total, err := fs.openRegular(path, want)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return size, crc, pathErr("checksum", path, fmt.Errorf("interrupted after %d of %d bytes: %w", size, total, context.Cause(ctx)))
		}
		n, rerr := f.Read(want.limit(buf, size))
		if err := want.grew(path, size+int64(n)); err != nil {
			return size, crc, err
		}
		crc = crc32.Update(crc, Castagnoli, buf[:n])
		size += int64(n)
		if rerr == io.EOF {
			return size, crc, nil
		}
		if rerr != nil {
			return size, crc, pathErr("read", path, rerr)
		}
	}
}

// ChecksumFromDevice is Checksum of a file that was fsynced, read from the
// device rather than from the page cache: on the real disk it first asks
// the kernel to drop the file's cached pages (posix_fadvise DONTNEED; they
// are clean after the fsync, so nothing is lost), so the bytes checksummed
// are the ones the disk returns. On other file systems it is Checksum.
// It changes nothing durable.
func (fs *FS) ChecksumFromDevice(ctx context.Context, path string, buf []byte) (size int64, crc uint32, err error) {
	if err := fs.faults.Hit(PointReadBack); err != nil {
		return 0, 0, pathErr("read back", path, err)
	}
	if fs.disk {
		if err := fs.dropCache(path); err != nil {
			return 0, 0, err
		}
	}
	return fs.Checksum(ctx, path, Want{}, buf)
}

// dropCache asks the kernel to drop path's pages from the page cache
// (posix_fadvise DONTNEED): clean pages go, dirty ones are left.
func (fs *FS) dropCache(path string) error {
	f, err := fs.v.Open(path)
	if err != nil {
		return pathErr("open", path, err)
	}
	if fd := f.Fd(); fd != vfs.InvalidFd {
		if err := unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED); err != nil {
			f.Close()
			return pathErr("fadvise", path, err)
		}
	}
	return pathErrOrNil("close", path, f.Close())
}

// ReadTail returns the last len(buf) bytes of path (fewer if the file is
// shorter) and the file's size. path must be a regular file
// (ErrNotRegular, as for Checksum).
func (fs *FS) ReadTail(path string, buf []byte) (tail []byte, size int64, err error) {
	f, size, err := fs.openRegular(path, Want{})
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	n := min(int64(len(buf)), size)
	if _, err := f.ReadAt(buf[:n], size-n); err != nil && err != io.EOF {
		return nil, size, pathErr("read", path, err)
	}
	return buf[:n], size, nil
}

// WriteFileDurable writes data to path atomically: a temporary file beside
// it, under a name of its own that no file has (path + ".tmp-" + random
// digits; never a user's path + ".tmp"), is written, fsynced and closed,
// renamed over path, and the directory fsynced. On success path holds
// data durably; on error path holds its old contents or data, and the
// temporary file is removed (a crash may leave it).
func (fs *FS) WriteFileDurable(path string, data []byte) (err error) {
	var tmp string
	for {
		tmp = fmt.Sprintf("%s.tmp-%d", path, rand.Uint64())
		ok, err := fs.Exists(tmp)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
	}
	f, err := fs.v.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return pathErr("create", tmp, err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			_ = fs.v.Remove(tmp) // ours: created above under a name no file had
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return pathErr("write", tmp, err)
	}
	if err := fs.faults.Hit(PointBeforeFileSync); err != nil {
		f.Close()
		return syncErr("sync", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return syncErr("sync", tmp, err)
	}
	fs.fileSyncs.Add(1)
	if err := f.Close(); err != nil {
		return pathErr("close", tmp, err)
	}
	if err := fs.faults.Hit(PointBeforeRename); err != nil {
		return pathErr("rename "+tmp+" to", path, err)
	}
	if err := fs.v.Rename(tmp, path); err != nil {
		return pathErr("rename "+tmp+" to", path, err)
	}
	renamed = true
	return fs.SyncDir(filepath.Dir(path))
}

// ChecksumPrefix returns the crc32c of the first n bytes of path, a
// regular file of at least n bytes (ErrNotRegular, as for Checksum; a
// shorter file is an error naming its size). It changes nothing.
func (fs *FS) ChecksumPrefix(ctx context.Context, path string, n int64, buf []byte) (uint32, error) {
	f, size, err := fs.openRegular(path, Want{})
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if size < n {
		return 0, pathErr("checksum", path, fmt.Errorf("%d bytes, fewer than the %d wanted", size, n))
	}
	var crc uint32
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return crc, pathErr("checksum", path, context.Cause(ctx))
		}
		m, err := f.ReadAt(buf[:min(int64(len(buf)), n-off)], off)
		crc = crc32.Update(crc, Castagnoli, buf[:m])
		off += int64(m)
		if err != nil && !(err == io.EOF && off == n) {
			return crc, pathErr("read", path, err)
		}
	}
	return crc, nil
}

// RemoveFileDurable removes the file path, then fsyncs its directory.
// On error the file may remain; a retry is safe.
func (fs *FS) RemoveFileDurable(path string) error {
	if err := fs.v.Remove(path); err != nil {
		return pathErr("remove", path, err)
	}
	return fs.SyncDir(filepath.Dir(path))
}
