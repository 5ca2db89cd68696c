package steps

import (
	"context"
	"fmt"
	"github.com/rs/zerolog"
	"path/filepath"
	"sync"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
)

// Resume. As Write completes files it journals them in batches
// (WrittenBatch): each file was fsynced when it was written; before a
// batch is journaled the staging directory is fsynced, so every file a
// note names is durable, whole, at its name, with the identity the note
// records. A run interrupted in Write (killed, crashed, or failed) is
// rolled back by moving its staging to its trash name in one rename
// (identity-proven, its files' signatures journaled, see trash) rather
// than removing it; the next restore of the same source reuses from it
// every file it journaled complete (see Reuse), and removes it after its
// own Write. A restore of another source, or one that does not resume,
// removes it first (Clean).

// PointBatchNoted fires after Write journaled a WrittenBatch: a kill
// there leaves a run that a restore of the same source resumes.
var PointBatchNoted = fault.Register("write.batch-noted", "after Write journaled a batch of completed files (a WrittenBatch note)")

// WrittenBatch is journaled by Write, as a note, for files it completed:
// each durable in staging, with its identity.
type WrittenBatch struct {
	Written []WrittenFile `json:"written,omitempty"`
	// Partial is a large file's progress: its first Offset bytes are
	// durable in staging (fdatasynced, the directory fsynced).
	Partial *PartialFile `json:"partial,omitempty"`
}

// PartialFile is how far the copy of one file got, durably: a resume
// continues it from Offset if the source lists the same file (Size and
// SourceCRC, or Origin where the source records no checksum) and the
// prefix in the trash still has crc32c CRC32C.
type PartialFile struct {
	Name      string `json:"name"`
	Offset    int64  `json:"offset"`
	CRC32C    uint32 `json:"crc32c"` // of the first Offset bytes
	Size      int64  `json:"size"`   // the whole file's, as the source lists it
	SourceCRC uint32 `json:"source_crc32c"`
	Origin    string `json:"origin,omitempty"`
	Dev       uint64 `json:"dev,omitempty"`
	Ino       uint64 `json:"ino,omitempty"`
}

// PartialEvery is how many bytes of one file Write copies between two
// notes of its progress (PartialFile); 0 turns them off.
var PartialEvery int64 = 64 << 20

// Batching of WrittenBatch notes: one journal commit at most every
// NoteEvery, or as soon as NoteBytes of completed files wait; the last
// batch of a completed Write is its written record. Tests set them to 0
// to note every file.
var (
	NoteEvery       = 200 * time.Millisecond
	NoteBytes int64 = 64 << 20
)

// batcher journals completed files in batches. add is called by Write's
// workers; a note is journaled under its lock, so one goroutine at a time
// journals, in the order files completed (and deterministically with one
// worker, as the power-loss matrix runs).
type batcher struct {
	fs      *fsx.FS
	r       *fsm.Run
	staging string

	mu      sync.Mutex
	pending []WrittenFile
	bytes   int64
	last    time.Time
	err     error
}

func newBatcher(fs *fsx.FS, r *fsm.Run, staging string) *batcher {
	return &batcher{fs: fs, r: r, staging: staging, last: time.Now()}
}

// add records wf, complete and fsynced, and journals the batch if it is
// due. An error means a note could not be made durable: Write fails.
func (b *batcher) add(wf WrittenFile) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.pending = append(b.pending, wf)
	if !wf.Linked && wf.Reused == "" {
		b.bytes += wf.Size
	}
	if b.bytes >= NoteBytes || time.Since(b.last) >= NoteEvery {
		return b.flushLocked()
	}
	return nil
}

// flush journals what waits: after a failed Write, so its rollback keeps
// the completed files for a resume.
func (b *batcher) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	return b.flushLocked()
}

// flushLocked fsyncs the staging directory, then journals the pending
// files. On error nothing more is journaled by this batcher.
func (b *batcher) flushLocked() error {
	return b.noteLocked(nil)
}

// partial journals p, with the pending files: a copy's durable progress.
func (b *batcher) partial(p PartialFile) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	return b.noteLocked(&p)
}

// noteLocked fsyncs the staging directory, then journals the pending
// files and p. On error nothing more is journaled by this batcher.
func (b *batcher) noteLocked(p *PartialFile) error {
	if len(b.pending) == 0 && p == nil || b.r == nil {
		return nil
	}
	if err := b.fs.SyncDir(b.staging); err != nil {
		b.err = err
		return err
	}
	if err := b.r.Note(WrittenBatch{Written: b.pending, Partial: p}); err != nil {
		b.err = err
		return err
	}
	b.pending, b.bytes, b.last = nil, 0, time.Now()
	// fault point: write.batch-noted
	if err := b.fs.Faults().Hit(PointBatchNoted); err != nil {
		b.err = err
		return err
	}
	return nil
}

// trashDir is a trash directory of this journal found in Work.
type trashDir struct {
	path   string
	rd     RunDir
	run    journal.Run
	notes  runNotes
	source string // the run's source
	// proven: the run ended, restored this database, and its rollback
	// journaled this directory, by identity.
	proven bool
	// resumable: proven, and its Write journaled complete files.
	resumable bool
}

// listTrash returns the trash directories of this journal in Work.
func (e *Env) listTrash() ([]trashDir, error) {
	names, err := e.FS.List(e.Layout.Work)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []trashDir
	for _, name := range names {
		rd, ok := ParseRunDir(name)
		if !ok || rd.Kind != "trash" || rd.Journal != e.jid() {
			continue
		}
		t := trashDir{path: filepath.Join(e.Layout.Work, name), rd: rd}
		r, err := e.Journal.Run(rd.Run)
		if err != nil || !SameDB(e.FS, r.Target, e.Layout.DB) || r.InFlight() {
			out = append(out, t)
			continue
		}
		t.run, t.source = r, r.Source
		if t.notes, err = e.notes(rd.Run); err != nil {
			return nil, err
		}
		if t.notes.trash != nil {
			id, err := e.FS.DirID(t.path)
			if err != nil {
				return nil, err
			}
			same, known := fsx.SameID(id, t.notes.trash.ID)
			t.proven = same || !known
		}
		t.resumable = t.proven && t.notes.resumable()
		out = append(out, t)
	}
	return out, nil
}

// sameSource reports whether source, a run's, is this run's source. In
// recovery (no source) every source is: a later restore may resume.
func (e *Env) sameSource(source string) bool {
	return e.Source == "" || filepath.Clean(source) == filepath.Clean(e.Source)
}

// reclaimable is the bytes the trash of this journal holds, as its
// rollback journaled them: Precheck counts them as free, since Clean or
// Write removes them (a resumed file is linked, not copied, so it needs
// no new space either).
func (e *Env) reclaimable() int64 {
	if e.Journal == nil {
		return 0
	}
	trash, err := e.listTrash()
	if err != nil {
		return 0
	}
	var n int64
	for _, t := range trash {
		if t.proven && t.notes.trash != nil {
			for _, f := range t.notes.trash.Files {
				n += f.Size
			}
		}
	}
	return n
}

// removeUsedTrash removes, after Write, the trash of this journal that it
// may have resumed from, by the proof its rollback journaled (the hard
// links Write made do not change what it holds, by name and size). It
// does not fail Write: a trash it could not remove is left for the next
// Clean, with a warning.
func (e *Env) removeUsedTrash() {
	trash, err := e.listTrash()
	if err != nil {
		e.Log.Warn().Err(err).Msg("listing the trash after write; the next restore removes it")
		return
	}
	var d disposal
	for _, t := range trash {
		if !t.resumable {
			continue
		}
		if err := e.cleanRunDir(t.path, t.rd, &d, false); err != nil {
			e.Log.Warn().Err(err).Str("trash", t.path).Msg("could not remove an interrupted run's partial copy after resuming; the next restore removes it")
		}
	}
}

// completed records wf, a file now complete and fsynced at dst in
// staging: its identity, its origin, and it joins the next batch note.
func (e *Env) completed(wf *WrittenFile, dst string, f SourceFile, b *batcher) error {
	if wf.Ident == nil {
		id, err := e.FS.Ident(dst)
		if err != nil {
			return err
		}
		wf.Ident = identOf(id)
	}
	if wf.Origin == "" && f.NoCRC {
		// Only where the source records no checksum is the origin what a
		// resume matches (the journal stays small otherwise).
		wf.Origin = f.origin()
	}
	return b.add(*wf)
}

// ListResumable returns the trash directories of journal j for the
// database of layout l that a restore may resume from (see Resume): an
// ended run's, proven by its identity, holding files its Write journaled
// complete. It changes nothing.
func ListResumable(fsys *fsx.FS, l Layout, j *journal.Journal) ([]string, error) {
	e := &Env{FS: fsys, Layout: l, Journal: j, Log: zerolog.Nop()}
	trash, err := e.listTrash()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range trash {
		if t.resumable {
			out = append(out, t.path)
		}
	}
	return out, nil
}

// transferFrom is where the copy of f into dst starts, and how its
// progress is journaled: from the start, unless an interrupted run
// journaled part of the same file (see PartialFile) whose prefix in its
// trash is still what it journaled; then that file is hard-linked as dst,
// its name in the trash removed (the copy writes on, and the trash must
// keep what its rollback journaled), and the copy continues at the
// journaled offset (unless resume is false: from the start). Every PartialEvery bytes the copy's progress is
// journaled (after an fdatasync of dst and the staging directory's fsync).
func (e *Env) transferFrom(ctx context.Context, f SourceFile, dst string, buf []byte, resume bool) (fsx.Resume, error) {
	var r fsx.Resume
	if e.batch != nil && PartialEvery > 0 && f.Size > PartialEvery {
		r.Every = PartialEvery
		r.Chunk = func(off int64, crc uint32) error {
			p := PartialFile{Name: f.Name, Offset: off, CRC32C: crc, Size: f.Size, SourceCRC: f.CRC32C}
			if f.NoCRC {
				p.Origin = f.origin()
			}
			if id, err := e.FS.Ident(dst); err == nil {
				p.Dev, p.Ino = id.ID.Dev, id.ID.Ino
			}
			return e.batch.partial(p)
		}
	}
	if e.reuser == nil || !resume {
		return r, nil
	}
	c, ok := e.reuser.partial[f.Name]
	if !ok {
		return r, nil
	}
	p := c.p
	switch {
	case p.Size != f.Size, p.Offset <= 0, p.Offset >= f.Size:
		return r, nil
	case f.NoCRC && (p.Origin == "" || p.Origin != f.origin()):
		return r, nil
	case !f.NoCRC && p.SourceCRC != f.CRC32C:
		return r, nil
	}
	id, err := e.FS.Ident(c.path)
	if err != nil || id.Size < p.Offset || id.Size > f.Size || (p.Ino != 0 && (id.ID.Ino != p.Ino || id.ID.Dev != p.Dev)) {
		if err != nil && !isNotExist(err) {
			return r, err
		}
		return r, nil
	}
	// The copy writes on into this file: it must have no other name (one
	// outside kvrflow's directory would see its bytes change, and the new
	// database would share its inode).
	if n, known, err := e.FS.Links(c.path); err != nil || known && n != 1 {
		if err != nil && !isNotExist(err) {
			return r, err
		}
		return r, nil
	}
	crc, err := e.FS.ChecksumPrefix(ctx, c.path, p.Offset, buf)
	if err != nil || crc != p.CRC32C {
		if ctx.Err() != nil {
			return r, err
		}
		e.Log.Debug().Str("file", c.path).Msg("an interrupted run's partial copy does not hold what it journaled; transferred again")
		return r, nil
	}
	if err := e.FS.Link(c.path, dst); err != nil {
		if linkRefused(err) != "" {
			return r, nil
		}
		return r, err
	}
	if got, err := e.FS.Ident(dst); err != nil || !got.Equal(id) {
		if err == nil {
			err = fmt.Errorf("%w: %s: changed while it was hard-linked into staging as %s (resume)", ErrChecksum, c.path, dst)
		}
		return r, err
	}
	if err := e.FS.RemoveFileDurable(c.path); err != nil {
		return r, err
	}
	r.Offset, r.CRC = p.Offset, p.CRC32C
	e.Log.Debug().Str("file", f.Name).Int64("offset", p.Offset).Msg("continuing an interrupted run's copy")
	return r, nil
}
