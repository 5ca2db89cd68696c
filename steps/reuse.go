package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// Reuse. Write puts a file in staging without transferring it when a
// copy it can prove identical is already on the database's file system:
//
//   - resume: a file an interrupted run of this journal journaled
//     complete (a WrittenBatch, or its written record) as a copy (one it
//     linked from the backup is linked from there again), now in that run's
//     trash (Work/trash-JID-N, where its rollback moved its staging), of
//     the same name, size and crc32c as the source lists (or, for a file
//     the source records no checksum of, the same origin: path and
//     version), whose identity (inode, size, mtime) is still the one the
//     note recorded, and whose bytes, read again, have the crc32c it
//     recorded (an identity does not prove the bytes: a file rewritten
//     in place keeps its inode and size, and touch -r sets its mtime
//     back);
//   - delta: a table (.sst or .blob, see isTable: never a MANIFEST,
//     OPTIONS, WAL or CURRENT) of the database being replaced, when it is a database
//     of the source's engine, of the same name, size and crc32c as the
//     backup records, read here while the run holds the database's LOCK.
//
// Either is hard-linked into staging (one file system: kvrflow's
// directory is beside the database) and the link checked to be the file
// checked: a link adds a name, never changes the contents, so the old
// database and the trash stay exactly as they were. The decision does not
// depend on how a file would have been transferred.

// Kinds of reuse, journaled in WrittenFile.Reused.
const (
	ReusedResume = "resume" // hard-linked from an interrupted run's trash
	ReusedDelta  = "delta"  // hard-linked from the database being replaced
)

// FileIdent is a file's identity as journaled: what Ident compares.
type FileIdent struct {
	Dev   uint64    `json:"dev,omitempty"`
	Ino   uint64    `json:"ino,omitempty"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

func identOf(id fsx.Ident) *FileIdent {
	return &FileIdent{Dev: id.ID.Dev, Ino: id.ID.Ino, Size: id.Size, MTime: id.ModTime}
}

// matches reports whether id is the file f records, unchanged.
func (f *FileIdent) matches(id fsx.Ident) bool {
	return f != nil && id.Equal(fsx.Ident{ID: fsx.FileID{Dev: f.Dev, Ino: f.Ino}, Size: f.Size, ModTime: f.MTime})
}

// origin names the version of f at its source, for a file whose checksum
// the source does not record: its path and, locally, its inode and
// modification time (a remote source's would be its URL and ETag).
func (f SourceFile) origin() string {
	if f.ETag != "" {
		return f.Path + "@" + f.ETag
	}
	if f.ident.ModTime.IsZero() {
		return ""
	}
	return f.Path + "@" + strconv.FormatUint(f.ident.ID.Ino, 10) + ":" + strconv.FormatInt(f.ident.ModTime.UnixNano(), 10)
}

// resumeCand is a file an interrupted run journaled complete, in its
// trash.
type resumeCand struct {
	path string
	wf   WrittenFile
}

// reuser holds what Write may reuse, found once before it starts.
type reuser struct {
	resume  map[string]resumeCand
	partial map[string]partialCand
	delta   bool // the database being replaced is of the source's engine
}

// partialCand is a file an interrupted run journaled part of, in its
// trash.
type partialCand struct {
	path string
	p    PartialFile
}

// newReuser finds the trash of ended runs of this journal on this
// database that journaled complete files (see resumableTrash), and
// whether delta applies.
func (e *Env) newReuser() (*reuser, error) {
	ru := &reuser{resume: map[string]resumeCand{}, partial: map[string]partialCand{}, delta: e.deltaApplies()}
	if e.Journal == nil {
		return ru, nil
	}
	trash, err := e.listTrash()
	if err != nil {
		return nil, err
	}
	for _, t := range trash {
		if !t.resumable || !e.sameSource(t.source) {
			continue
		}
		for _, wf := range t.notes.completed {
			if wf.Ident == nil {
				continue
			}
			ru.resume[wf.Name] = resumeCand{path: filepath.Join(t.path, wf.Name), wf: wf}
		}
		for name, p := range t.notes.partial {
			ru.partial[name] = partialCand{path: filepath.Join(t.path, name), p: p}
		}
	}
	return ru, nil
}

// deltaApplies reports whether the database being replaced may lend its
// tables: delta is not turned off and DB holds a database of the source's
// engine.
func (e *Env) deltaApplies() bool {
	if e.NoDelta || e.src == nil {
		return false
	}
	return e.target == TargetPebble && e.src.Engine == EnginePebble ||
		e.target == TargetRocksDB && e.src.Engine == EngineRocksDB
}

// reuse puts f in staging at dst by a hard link if a proven identical
// copy is on this file system (see Reuse), and returns what it journals;
// ok false means f must be transferred. An error means a link was made
// to a file that changed, or the file system failed.
func (e *Env) reuse(ctx context.Context, ru *reuser, f SourceFile, dst string, buf []byte) (wf WrittenFile, ok bool, err error) {
	if ru == nil {
		return WrittenFile{}, false, nil
	}
	if c, found := ru.resume[f.Name]; found {
		if wf, ok, err := e.reuseResumed(ctx, c, f, dst, buf); ok || err != nil {
			return wf, ok, err
		}
	}
	linked := e.mode == ModeLink && f.Linkable && e.linkFallback.Load() == nil
	if ru.delta && isTable(f.Name) && !f.NoCRC && !linked {
		return e.reuseDelta(ctx, f, dst, buf)
	}
	return WrittenFile{}, false, nil
}

// reuseResumed links c, a file an interrupted run journaled complete, if
// it is f's copy (see Reuse).
func (e *Env) reuseResumed(ctx context.Context, c resumeCand, f SourceFile, dst string, buf []byte) (WrittenFile, bool, error) {
	w := c.wf
	switch {
	case w.Size != f.Size, w.Unchecked:
		return WrittenFile{}, false, nil
	case w.Linked:
		// A link to the backup's own file: a copy is wanted here, or a
		// link to the backup's file again, which costs no more and
		// reads nothing.
		return WrittenFile{}, false, nil
	case f.NoCRC:
		if w.Origin == "" || w.Origin != f.origin() {
			return WrittenFile{}, false, nil
		}
	case w.CRC32C != f.CRC32C:
		return WrittenFile{}, false, nil
	}
	id, err := e.FS.Ident(c.path)
	if err != nil || !w.Ident.matches(id) {
		if err != nil && !isNotExist(err) {
			return WrittenFile{}, false, err
		}
		e.Log.Debug().Str("file", c.path).Msg("an interrupted run's copy changed since it was journaled; transferred again")
		return WrittenFile{}, false, nil
	}
	if e.NoDelta {
		// The database's own table, linked by a delta run (or by a resume
		// of one): with --no-delta the database lends nothing.
		if db, err := e.FS.Ident(filepath.Join(e.Layout.DB, f.Name)); err == nil && id.ID.Ino != 0 && db.ID == id.ID {
			return WrittenFile{}, false, nil
		}
	}
	// Its identity does not prove its bytes: a file rewritten in place
	// keeps its inode and size, and its mtime can be set back (touch -r).
	// It is read and checksummed, as a delta's table is.
	size, crc, err := e.FS.Checksum(ctx, c.path, fsx.Want{ID: id.ID, Size: id.Size, Sized: true}, buf)
	if err != nil || size != w.Size || crc != w.CRC32C {
		if ctx.Err() != nil {
			return WrittenFile{}, false, err
		}
		e.Log.Debug().Str("file", c.path).Msg("an interrupted run's copy does not hold what it journaled; transferred again")
		return WrittenFile{}, false, nil
	}
	if again, err := e.FS.Ident(c.path); err != nil || !again.Equal(id) {
		return WrittenFile{}, false, err
	}
	return e.linkReused(ctx, c.path, id, f, w.CRC32C, ReusedResume, dst, buf)
}

// reuseDelta links the database's own table of f's name if it is f (see
// Reuse): its identity taken, its bytes read and checksummed, its
// identity again (unchanged while read).
func (e *Env) reuseDelta(ctx context.Context, f SourceFile, dst string, buf []byte) (WrittenFile, bool, error) {
	src := filepath.Join(e.Layout.DB, f.Name)
	id, err := e.FS.Ident(src)
	if err != nil || id.Size != f.Size {
		if err != nil && !isNotExist(err) {
			return WrittenFile{}, false, err
		}
		return WrittenFile{}, false, nil
	}
	size, crc, err := e.FS.Checksum(ctx, src, fsx.Want{ID: id.ID, Size: id.Size, Sized: true}, buf)
	if err != nil {
		if ctx.Err() != nil {
			return WrittenFile{}, false, err
		}
		// The database being replaced cannot lend this table (unreadable,
		// replaced): the backup's is transferred.
		e.Log.Warn().Err(err).Str("file", src).Msg("delta: the database's table could not be read; transferring the backup's")
		return WrittenFile{}, false, nil
	}
	if size != f.Size || crc != f.CRC32C {
		return WrittenFile{}, false, nil
	}
	if again, err := e.FS.Ident(src); err != nil || !again.Equal(id) {
		return WrittenFile{}, false, err
	}
	return e.linkReused(ctx, src, id, f, crc, ReusedDelta, dst, buf)
}

// linkReused hard-links src, whose identity is id, as dst, checks that
// dst is that file, unchanged, and at VerifyFull reads it back from the
// device. A link the file system refuses (EPERM, EXDEV) is no error: the
// file is transferred.
func (e *Env) linkReused(ctx context.Context, src string, id fsx.Ident, f SourceFile, crc uint32, how, dst string, buf []byte) (WrittenFile, bool, error) {
	err := e.FS.Link(src, dst)
	if linkRefused(err) != "" {
		return WrittenFile{}, false, nil
	}
	if err != nil {
		return WrittenFile{}, false, err
	}
	got, err := e.FS.Ident(dst)
	if err != nil {
		return WrittenFile{}, false, err
	}
	if !got.Equal(id) {
		return WrittenFile{}, false, fmt.Errorf("%w: %s: changed while it was hard-linked into staging as %s (%s)", ErrChecksum, src, dst, how)
	}
	if e.verifyLevel() == VerifyFull {
		rsize, rcrc, err := e.FS.ChecksumFromDevice(ctx, dst, buf)
		if err != nil {
			return WrittenFile{}, false, err
		}
		if rsize != f.Size || rcrc != crc {
			return WrittenFile{}, false, fmt.Errorf("%w: %s: read back %d bytes with crc32c %08x, want %d bytes %08x", ErrChecksum, dst, rsize, rcrc, f.Size, crc)
		}
	}
	return WrittenFile{Name: f.Name, Size: f.Size, CRC32C: crc, Reused: how, Ident: identOf(got)}, true, nil
}

// isTable reports whether name is an immutable table file of either
// engine: an sstable (.sst) or a blob file (.blob). Neither engine writes
// one in place once it is complete (a compaction writes new files), which
// is what makes sharing its inode safe. By name, not by
// SourceFile.Linkable: a remote source's tables are not linkable from
// the source, yet the database's own copy may be.
func isTable(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}
