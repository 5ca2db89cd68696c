package steps

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
)

// WrittenFile is journaled for each file Write put in staging.
type WrittenFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
	Linked bool   `json:"linked,omitempty"`
	// Unchecked: its crc32c was not checked (a table hard-linked at
	// --verify size); CRC32C is what the source records, 0 if it records
	// none (a checkpoint).
	Unchecked bool `json:"crc32c_unchecked,omitempty"`
	// Copied: a table to be hard-linked that was copied because links were
	// refused (see WriteDetails.LinkFallback).
	Copied bool `json:"copied_not_linked,omitempty"`
	// Key and ETag: the object a remote source's file was read from.
	Key  string `json:"key,omitempty"`
	ETag string `json:"etag,omitempty"`
	// Reused says the file was not transferred but hard-linked from a
	// proven copy (ReusedResume, ReusedDelta: see Reuse); empty if not.
	Reused string `json:"reused,omitempty"`
	// Ident is the file's identity in staging once complete, durable:
	// a resume reuses the file only if it still has it.
	Ident *FileIdent `json:"ident,omitempty"`
	// Origin names the source's version of the file (see
	// SourceFile.origin), journaled for a file whose checksum the source
	// does not record: a resume matches it then.
	Origin string `json:"origin,omitempty"`
	// ResumedFrom is where its copy started: an interrupted run's
	// journaled prefix of it was continued (see PartialFile); 0 if none.
	ResumedFrom int64 `json:"resumed_from,omitempty"`
}

// WriteDetails is journaled when Write is done.
type WriteDetails struct {
	Staging string        `json:"staging"`
	Mode    Mode          `json:"mode"`
	Bytes   int64         `json:"bytes"`
	Files   []WrittenFile `json:"files"`
	// LinkFallback says why tables were copied in link mode (--mode auto,
	// a link refused with EPERM or EXDEV); empty if none was.
	LinkFallback string `json:"link_fallback,omitempty"`
	// Transferred is the bytes read from the source and written (not
	// linked, not reused); Resumed and Delta the bytes reused from an
	// interrupted run's trash and from the replaced database.
	Transferred int64 `json:"transferred_bytes"`
	Resumed     int64 `json:"resumed_bytes,omitempty"`
	Delta       int64 `json:"delta_bytes,omitempty"`
}

// write builds the new database in the run's staging directory: every
// file copied (crc32c computed on the bytes as they are written and
// compared with the backup's, then fsynced; at VerifyFull read back from
// the device and compared again) or, in link mode, .sst files
// hard-linked; then the directory fsynced. Files are copied by
// Workers goroutines; the journaled list keeps the source's order.
func (e *Env) write(ctx context.Context, r *fsm.Run) (any, error) {
	staging := e.Layout.Staging(e.jid(), e.RunID)
	if err := e.FS.MkdirDurable(staging); err != nil {
		return nil, err
	}
	// The directory's identity is journaled before anything is put in it:
	// Rollback removes it only if it is still this directory.
	id, err := e.FS.DirID(staging)
	if err != nil {
		return nil, err
	}
	if err := r.Note(StagingNote{Staging: staging, ID: id}); err != nil {
		return nil, err
	}
	d := WriteDetails{Staging: staging, Mode: e.mode, Files: make([]WrittenFile, len(e.src.Files))}
	// Progress: bytes copied in copy mode; files put in staging in link
	// mode, where most are hard-linked in no time (bytes would claim
	// terabytes a second).
	total, unit := e.src.Bytes(), ProgressBytes
	if e.mode == ModeLink {
		total, unit = int64(len(e.src.Files)), ProgressFiles
	}
	var mu sync.Mutex // Progress calls
	var done, files atomic.Int64
	report := func(v int64) {
		if e.Progress != nil {
			mu.Lock()
			e.Progress(v, total, unit)
			mu.Unlock()
		}
	}
	onBytes := func(n int) {
		if v := done.Add(int64(n)); unit == ProgressBytes {
			report(v)
		}
	}
	// Files proven identical on this file system are linked, not
	// transferred (see Reuse); completed files are journaled in batches
	// (see Resume).
	ru, err := e.newReuser()
	if err != nil {
		return nil, err
	}
	notes := newBatcher(e.FS, r, staging)
	e.reuser, e.batch = ru, notes
	defer func() { e.reuser, e.batch = nil, nil }()
	report(0) // the clock of a rate starts with the write
	err = eachFile(ctx, len(e.src.Files), func(ctx context.Context, i int, buf []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, dst := e.src.Files[i], filepath.Join(staging, e.src.Files[i].Name)
		wf, reused, err := e.reuse(ctx, ru, f, dst, buf)
		if reused {
			onBytes(int(f.Size))
		} else if err == nil {
			wf, err = e.writeFile(ctx, f, staging, buf, onBytes)
		}
		if err == nil {
			err = e.completed(&wf, dst, f, notes)
		}
		d.Files[i] = wf
		if v := files.Add(1); err == nil && unit == ProgressFiles {
			report(v)
		}
		return err
	})
	if err != nil {
		// What completed is journaled: the rollback keeps it for a resume.
		if nerr := notes.flush(); nerr != nil {
			e.Log.Warn().Err(nerr).Msg("journaling the files completed before the failure")
		}
		return d, err
	}
	for _, f := range d.Files {
		switch {
		case f.Reused == ReusedResume:
			d.Resumed += f.Size
		case f.Reused == ReusedDelta:
			d.Delta += f.Size
		case !f.Linked:
			d.Transferred += f.Size - f.ResumedFrom
			d.Resumed += f.ResumedFrom
		}
		if !f.Linked && f.Reused == "" {
			d.Bytes += f.Size
		}
	}
	if why := e.linkFallback.Load(); why != nil {
		d.LinkFallback = *why
	}
	if err := e.FS.SyncDir(staging); err != nil {
		return d, err
	}
	e.removeUsedTrash()
	return d, nil
}

// writeFile puts one file in staging and checks it. A copy's crc32c is
// computed on the bytes as they are written and compared with the
// backup's: a mismatch against a checksum the backup recorded is a corrupt
// backup (ErrBadSource, like Precheck's); against one Precheck measured,
// a source that changed while being copied (ErrChecksum). At VerifyFull
// the fsynced copy is then read back from the device and compared again.
// A hard-linked table was checked by Precheck.
func (e *Env) writeFile(ctx context.Context, f SourceFile, staging string, buf []byte, onBytes func(int)) (WrittenFile, error) {
	dst := filepath.Join(staging, f.Name)
	if e.mode == ModeLink && f.Linkable && e.linkFallback.Load() == nil {
		err := e.FS.Link(f.Path, dst)
		if why := linkRefused(err); why != "" {
			if e.Mode == ModeLink {
				return WrittenFile{}, fmt.Errorf("%w: --mode link: %w (%s); use --mode copy or auto", ErrBadPath, err, why)
			}
			if e.linkFallback.CompareAndSwap(nil, &why) {
				e.Log.Warn().Err(err).Str("why", why).Msg("hard links refused here; copying the tables instead")
			}
			return e.copyFile(ctx, f, dst, buf, onBytes)
		}
		if err != nil {
			return WrittenFile{}, err
		}
		// The link must be to the file Precheck checked: one replaced or
		// written since would enter the database unchecked.
		id, err := e.FS.Ident(dst)
		if err != nil {
			return WrittenFile{}, err
		}
		if !id.Equal(f.ident) {
			return WrittenFile{}, fmt.Errorf("%w: %s: changed after precheck checked it (now %d bytes, inode %d, modified %s; was %d bytes, inode %d, modified %s)",
				ErrChecksum, f.Path, id.Size, id.ID.Ino, id.ModTime.Format(time.RFC3339Nano), f.ident.Size, f.ident.ID.Ino, f.ident.ModTime.Format(time.RFC3339Nano))
		}
		onBytes(int(f.Size))
		return WrittenFile{Name: f.Name, Size: f.Size, CRC32C: f.CRC32C, Linked: true, Unchecked: e.verifyLevel() == VerifySize}, nil
	}
	return e.copyFile(ctx, f, dst, buf, onBytes)
}

// copyFile copies one file into staging and checks it (see writeFile).
// A resumed copy that fails the checksum is copied again from its first
// byte, once: the prefix an interrupted run journaled may hold a byte
// damaged in transit, journaled with its crc32c.
func (e *Env) copyFile(ctx context.Context, f SourceFile, dst string, buf []byte, onBytes func(int)) (WrittenFile, error) {
	wf, resumed, err := e.copyFileFrom(ctx, f, dst, buf, onBytes, true)
	if err == nil || resumed == 0 || !errors.Is(err, ErrChecksum) || ctx.Err() != nil {
		return wf, err
	}
	e.Log.Warn().Err(err).Str("file", f.Name).Int64("resumed_from", resumed).
		Msg("the resumed copy fails the checksum; copying the file again from its first byte")
	if rerr := e.FS.RemoveFileDurable(dst); rerr != nil {
		return WrittenFile{}, errors.Join(err, rerr)
	}
	wf, _, err = e.copyFileFrom(ctx, f, dst, buf, onBytes, false)
	return wf, err
}

// copyFileFrom is copyFile's attempt, continuing an interrupted run's
// copy if resume is set and there is one (the offset is returned).
func (e *Env) copyFileFrom(ctx context.Context, f SourceFile, dst string, buf []byte, onBytes func(int), resume bool) (WrittenFile, int64, error) {
	// A local file opened must be the regular file Precheck checked; no
	// more than its size and one byte are read (see fetch).
	from, err := e.transferFrom(ctx, f, dst, buf, resume) // a resume's start; progress notes
	if err != nil {
		return WrittenFile{}, 0, err
	}
	if from.Offset > 0 {
		onBytes(int(from.Offset))
	}
	size, crc, err := e.fetch(ctx, f, dst, from, buf, onBytes)
	if err == nil {
		err = checkCopied(&f, size, crc)
	}
	if err != nil {
		if errors.Is(err, ErrChecksum) {
			// The bytes in dst are not the file's: a progress note
			// journaled on the way (or the resumed prefix) may hold a
			// damaged byte with its crc32c, and a resume would continue
			// it and fail the same check on every run. No resume point.
			if ferr := e.forgetProgress(f, from.Offset); ferr != nil {
				return WrittenFile{}, from.Offset, errors.Join(err, ferr)
			}
			onBytes(-int(size)) // the bytes counted are not the file's
		}
		return WrittenFile{}, from.Offset, err
	}
	if e.verifyLevel() == VerifyFull {
		rsize, rcrc, err := e.FS.ChecksumFromDevice(ctx, dst, buf)
		if err != nil {
			return WrittenFile{}, from.Offset, err
		}
		if rsize != size || rcrc != crc {
			return WrittenFile{}, from.Offset, fmt.Errorf("%w: %s: read back %d bytes with crc32c %08x, wrote %d bytes %08x", ErrChecksum, dst, rsize, rcrc, size, crc)
		}
	}
	return WrittenFile{Name: f.Name, Size: size, CRC32C: crc, Copied: f.Linkable && e.mode == ModeLink, Key: f.Key, ETag: f.ETag, ResumedFrom: from.Offset}, from.Offset, nil
}

// checkCopied compares the size and crc32c of the bytes copied of f with
// what the source lists (ErrChecksum); a file whose source records no
// checksum takes the one measured (f.CRC32C).
func checkCopied(f *SourceFile, size int64, crc uint32) error {
	if f.NoCRC && size == f.Size {
		// A table meant to be hard-linked at --verify size, of a source
		// that records no checksum, copied after a link was refused, or a
		// remote checkpoint's file: there is nothing to compare with; its
		// crc32c is now measured.
		f.CRC32C = crc
	}
	if size != f.Size || crc != f.CRC32C {
		if f.Measured {
			return fmt.Errorf("%w: %s: copied %d bytes with crc32c %08x, precheck measured %d bytes %08x (the source changed while being copied)",
				ErrChecksum, f.Path, size, crc, f.Size, f.CRC32C)
		}
		return fmt.Errorf("%w: %w: %s: read %d bytes with crc32c %08x, the backup lists %d bytes %08x (corrupt, or changed while being copied)",
			ErrBadSource, ErrChecksum, f.Path, size, crc, f.Size, f.CRC32C)
	}
	return nil
}

// forgetProgress journals that the copy of f in staging is no resume
// point (a PartialFile at offset 0, which transferFrom never continues),
// if its progress may have been journaled: notes are taken of a file
// larger than PartialEvery, or it was resumed (from above 0).
func (e *Env) forgetProgress(f SourceFile, from int64) error {
	if e.batch == nil || from == 0 && (PartialEvery <= 0 || f.Size <= PartialEvery) {
		return nil
	}
	return e.batch.partial(PartialFile{Name: f.Name, Size: f.Size, SourceCRC: f.CRC32C})
}

// linkRefused names why a hard link failed if the file system refused it
// as such (so a copy would do), or returns "" for any other outcome.
func linkRefused(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM):
		return "EPERM: this file system or fs.protected_hardlinks forbids the link (a table owned by another user?)"
	case errors.Is(err, syscall.EXDEV):
		return "EXDEV: the backup and kvrflow's directory are on different file systems"
	}
	return ""
}
