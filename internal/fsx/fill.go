package fsx

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FillFile creates dst (which must not exist), lets fill write its bytes,
// and fsyncs dst before closing it, unless fill failed: a file whose bytes
// were refused (a checksum mismatch found by fill after its last byte) is
// never synced. It is CopyFile for a source that is not a file (an object
// store's stream): the same fault points (PointWrite for each write,
// PointBeforeFileSync, PointAfterFileSync), the same writeback as it
// goes, onBytes after each write. When ctx is done, the next write fails
// with an error matching ctx's cause, naming how many bytes were written.
// It does not sync dst's directory: the caller syncs it once after all
// files.
//
// With r.Offset above 0 it continues a resumed file as CopyFileFrom does:
// dst, which holds r.Offset durable bytes with crc32c r.CRC, is opened for
// writing and fill's bytes are written from r.Offset on. Every r.Every
// bytes (if above 0) dst is fdatasynced and r.Chunk called with the bytes
// durable and their crc32c, continued from r.CRC.
//
// On error dst may exist, partly written; it is left for the caller's
// cleanup of the directory it is in.
func (fs *FS) FillFile(ctx context.Context, dst string, r Resume, onBytes func(int), fill func(w io.Writer) error) (err error) {
	if err := ctx.Err(); err != nil {
		return pathErr("create", dst, context.Cause(ctx))
	}
	var out vfs.File
	if r.Offset > 0 {
		out, err = fs.v.OpenReadWrite(dst, vfs.WriteCategoryUnspecified)
	} else {
		out, err = fs.v.Create(dst, vfs.WriteCategoryUnspecified)
	}
	if err != nil {
		return pathErr("create", dst, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = pathErr("close", dst, cerr)
		}
	}()
	w := &fillWriter{ctx: ctx, fs: fs, out: out, dst: dst, wb: newWriteback(out), onBytes: onBytes,
		r: r, pos: r.Offset, crc: r.CRC, next: -1}
	if r.Every > 0 && r.Chunk != nil {
		w.next = r.Offset + r.Every
	}
	if err := fill(w); err != nil {
		return err
	}
	if err := fs.faults.Hit(PointBeforeFileSync); err != nil {
		return syncErr("sync", dst, err)
	}
	if err := out.Sync(); err != nil {
		return syncErr("sync", dst, err)
	}
	fs.fileSyncs.Add(1)
	if err := fs.faults.Hit(PointAfterFileSync); err != nil {
		return pathErr("sync", dst, err)
	}
	return nil
}

// fillWriter is the writer FillFile hands to fill.
type fillWriter struct {
	ctx     context.Context
	fs      *FS
	out     vfs.File
	dst     string
	wb      *writeback
	onBytes func(int)
	n       int64 // bytes fill wrote
	r       Resume
	pos     int64  // dst's offset of the next byte
	crc     uint32 // crc32c of dst's bytes before pos
	next    int64  // pos of the next r.Chunk; -1 none
}

func (w *fillWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, pathErr("write", w.dst, fmt.Errorf("interrupted after %d bytes: %w", w.n, context.Cause(w.ctx)))
	}
	if err := w.fs.faults.Hit(PointWrite); err != nil {
		return 0, pathErr("write", w.dst, err)
	}
	var n int
	var err error
	if w.r.Offset > 0 {
		n, err = w.out.WriteAt(p, w.pos)
	} else {
		n, err = w.out.Write(p)
	}
	w.n += int64(n)
	if n > 0 {
		w.pos += int64(n)
		if w.next >= 0 {
			w.crc = crc32.Update(w.crc, Castagnoli, p[:n])
		}
		w.wb.wrote(n)
		if w.onBytes != nil {
			w.onBytes(n)
		}
	}
	if err != nil {
		return n, pathErr("write", w.dst, err)
	}
	if w.next >= 0 && w.pos >= w.next {
		if err := w.out.SyncData(); err != nil {
			return n, syncErr("sync", w.dst, err)
		}
		w.fs.fileSyncs.Add(1)
		if err := w.r.Chunk(w.pos, w.crc); err != nil {
			return n, err
		}
		w.next = w.pos + w.r.Every
	}
	return n, nil
}
