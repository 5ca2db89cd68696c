package steps

import (
	"context"
	"io"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// fetch puts the bytes of source file f into the new file dst, fsynced,
// and returns their size and crc32c, computed as they were written. It is
// the one place Write reads a source: a local file is copied
// (fsx.CopyFile; it must be the regular file Precheck checked, read to
// at most its size and one byte); a remote object is streamed into dst
// (remote.Store.Copy: one streamed GET per RemoteGetSize, a retry
// continuing from the first byte not written), at most RemoteFiles at
// once, and checked against its listed size and ETag and the crc32c the
// source records before dst is fsynced: a mismatch leaves dst unsynced
// and is ErrBadSource (and ErrChecksum for the crc32c).
//
// On error dst may exist, partly written; Rollback removes the staging
// directory it is in. A retry is safe.
//
// from continues a resumed file (see transferFrom): its first from.Offset
// bytes are in dst already, durable, with crc32c from.CRC; only the rest
// is read, and the size and crc32c returned are the whole file's. Every
// from.Every bytes dst is fdatasynced and from.Chunk journals the
// progress: the bytes FillFile's writer was given, in order, and their
// crc32c. For a remote object these may include bytes of a GET that
// failed later; Copy writes only bytes of the listed object (size, ETag,
// Content-Range checked), each once at its offset, so the journaled
// prefix is the object's and its crc32c that prefix's, and the final
// crc32c check covers it. Unless a byte was damaged in transit (plain
// HTTP, a faulty proxy): the prefix is then journaled with the damaged
// byte's crc32c, and only the final check finds it; copyFile then makes
// the file no resume point and copies a resumed one again from byte 0.
func (e *Env) fetch(ctx context.Context, f SourceFile, dst string, from fsx.Resume, buf []byte, onBytes func(int)) (int64, uint32, error) {
	if !e.src.Remote() {
		size, crc, err := e.FS.CopyFileFrom(ctx, f.Path, dst, fsx.Want{ID: f.ident.ID, Size: f.Size, Sized: true}, from, buf, onBytes)
		return size, crc, sourceErr(err)
	}
	r := e.src.remote
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		return 0, 0, context.Cause(ctx)
	}
	var size int64
	var crc uint32
	want := remoteWant(f)
	want.Offset, want.PrefixCRC = from.Offset, from.CRC
	err := e.FS.FillFile(ctx, dst, from, onBytes, func(w io.Writer) error {
		var err error
		size, crc, err = r.store.Copy(ctx, f.Key, w, want)
		return remoteErr(err)
	})
	return from.Offset + size, crc, err
}
