package steps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// Ownership. kvrflow deletes a directory only when its journal proves, by
// the directory's identity, that a run of this journal made it (or, for
// the old database, took it over at the commit) and that the run no longer
// needs it:
//
//   - names: every directory a run makes in Work is named after the
//     journal's id and the run's number (staging-JID-N, old-JID-N), so a
//     second journal on the same database never reads another's directory
//     as its own;
//   - identity: Write journals the staging directory's (device, inode)
//     right after creating it, before anything is put in it; Commit
//     journals the old database's and the staged directory's before it
//     moves either. A directory is removed only if it has the name and
//     the identity recorded; anything else is quarantined, intact;
//   - on file systems without inodes (Pebble's in-memory ones, used by
//     the tests) the name and the journal record are the proof.
//
// An empty directory holds no data: one at a run's name that the journal
// has no record of (a crash between the mkdir and the note) is removed
// without further proof.

// StagingNote is journaled by Write right after it created the run's
// staging directory, before anything is put in it.
type StagingNote struct {
	Staging string      `json:"staging"`
	ID      *fsx.FileID `json:"staging_id,omitempty"`
}

// runNotes are what a run journaled about the directories it made.
type runNotes struct {
	staging  *StagingNote  // Write's note, if Write got that far
	plan     *CommitPlan   // the last commit plan, if Commit got that far
	target   string        // what Precheck found at DB (TargetEmpty, ...)
	previous *Kept         // the kept database an undo brings back
	written  []WrittenFile // what Write put in staging, if Write completed
	keepOld  int           // the generations Precheck journaled to keep
	undoMove *UndoMove     // an undo's move of the kept database to its staging name
	trash    *Kept         // the partial staging an interrupted rollback set aside
	prepare  string        // the cluster restore a cluster node's run is part of
	// completed are the files Write journaled complete, durable in
	// staging: its WrittenBatch notes, then its written record.
	completed []WrittenFile
	// partial is the last progress Write journaled of each file it had
	// not completed.
	partial map[string]PartialFile
}

// resumable reports whether Write journaled anything a resume can use.
func (n runNotes) resumable() bool {
	if len(n.completed) > 0 {
		return true
	}
	for _, p := range n.partial {
		if p.Offset > 0 { // offset 0: forgotten (a copy that failed its checksum)
			return true
		}
	}
	return false
}

// notes reads run id's notes from the journal.
func (e *Env) notes(id uint64) (runNotes, error) {
	var n runNotes
	evs, err := e.Journal.Events(id)
	if err != nil {
		return n, err
	}
	for _, ev := range evs {
		switch {
		case ev.Event == fsm.NoteEvent && ev.From == StateWrite:
			staging, batch, err := parseWriteNote(ev.Details)
			if err != nil {
				return n, fmt.Errorf("%w: run %d event %d: bad write note: %w", ErrInconsistent, id, ev.Seq, err)
			}
			if staging != nil {
				n.staging = staging
			}
			n.completed = append(n.completed, batch.Written...)
			for _, f := range batch.Written {
				delete(n.partial, f.Name)
			}
			if p := batch.Partial; p != nil {
				if n.partial == nil {
					n.partial = map[string]PartialFile{}
				}
				n.partial[p.Name] = *p
			}
		case ev.Event == fsm.NoteEvent && ev.From == StateCommit:
			var p struct {
				CommitPlan
				UndoMove
			}
			if err := json.Unmarshal(ev.Details, &p); err != nil {
				return n, fmt.Errorf("%w: run %d event %d: bad commit note: %w", ErrInconsistent, id, ev.Seq, err)
			}
			if p.UndoMove.To != "" {
				mv := p.UndoMove
				n.undoMove = &mv
			} else {
				plan := p.CommitPlan
				n.plan = &plan
			}
		case ev.From == StateRollback && ev.Event == "rolled_back":
			var d RollbackDetails
			if json.Unmarshal(ev.Details, &d) == nil {
				n.trash = d.Trash
			}
		case ev.From == StateWrite && ev.Event == "written":
			var d WriteDetails
			if err := json.Unmarshal(ev.Details, &d); err != nil {
				return n, fmt.Errorf("%w: run %d event %d: bad write details: %w", ErrInconsistent, id, ev.Seq, err)
			}
			n.written = d.Files
			n.completed = append(n.completed, d.Files...)
		case ev.From == StatePrecheck && ev.Event == "checked":
			var d struct {
				Target   string `json:"target"`
				Previous *Kept  `json:"previous"`
				KeepOld  int    `json:"keep_old"`
				Prepare  string `json:"prepare"`
			}
			if json.Unmarshal(ev.Details, &d) == nil {
				n.target, n.previous, n.keepOld, n.prepare = d.Target, d.Previous, d.KeepOld, d.Prepare
			}
		}
	}
	return n, nil
}

// parseWriteNote reads one of Write's notes: the staging note (staging
// set), or a batch of completed files (written); a journal written before
// batches existed holds only staging notes.
func parseWriteNote(details []byte) (staging *StagingNote, batch WrittenBatch, err error) {
	var s struct {
		StagingNote
		WrittenBatch
	}
	if err := json.Unmarshal(details, &s); err != nil {
		return nil, WrittenBatch{}, err
	}
	if s.Staging != "" {
		sn := s.StagingNote
		staging = &sn
	}
	return staging, s.WrittenBatch, nil
}

// jid is the id of the run's journal ("" without one: a step run on its
// own, as in tests, owns no directory).
func (e *Env) jid() string {
	if e.Journal == nil {
		return ""
	}
	return e.Journal.ID()
}

// stagingPath is where the run builds (or built) the new database: as its
// journal says, else by its name.
func (e *Env) stagingPath(n runNotes) string {
	switch {
	case n.staging != nil:
		return n.staging.Staging
	case n.plan != nil:
		return n.plan.Staging
	case n.undoMove != nil:
		return n.undoMove.To
	case n.previous != nil:
		return n.previous.Path
	}
	return e.Layout.Staging(e.jid(), e.RunID)
}

// disposal says what removeProven did with a directory.
type disposal struct {
	removed     []string
	quarantined []Quarantine
	kept        []string // trash kept for a resume (see cleanRunDir)
}

// removeProven removes path, a directory, when the journal proves it is
// the one with identity want: recorded says the journal holds the record
// (want is nil where the file system has no inodes, and then the record
// and the name are the proof). Without a record, an empty directory is
// removed and anything else quarantined; so is a directory whose identity
// differs, or anything at path that is not a directory. A path that does
// not exist is left alone. What it did is added to d.
func (e *Env) removeProven(path string, want *fsx.FileID, recorded bool, what string, d *disposal) error {
	mode, err := e.FS.LstatMode(path)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	reason := ""
	switch {
	case !mode.IsDir():
		reason = fmt.Sprintf("%s is %s, not a directory: not made by kvrflow", path, fsx.KindOf(mode))
	case !recorded:
		removed, err := e.FS.RemoveEmptyDir(path)
		if err != nil || removed {
			if removed {
				e.Log.Info().Str("path", path).Msg("removed an empty directory at a run's name")
				d.removed = append(d.removed, path)
			}
			return err
		}
		reason = fmt.Sprintf("the journal has no record of %s (%s) and it is not empty", path, what)
	default:
		got, err := e.FS.DirID(path)
		if err != nil {
			return err
		}
		if same, known := fsx.SameID(got, want); known && !same {
			reason = fmt.Sprintf("%s is not the directory the journal recorded for %s (inode %d, recorded %d)", path, what, got.Ino, want.Ino)
		}
	}
	if reason != "" {
		q, err := e.quarantine(path, reason)
		if err != nil {
			return err
		}
		d.quarantined = append(d.quarantined, q)
		return nil
	}
	if err := e.FS.RemoveAllDurable(path); err != nil {
		return err
	}
	e.Log.Info().Str("path", path).Str("proof", what).Msg("removed kvrflow's directory")
	d.removed = append(d.removed, path)
	return nil
}

func isNotExist(err error) bool { return err != nil && errors.Is(err, fs.ErrNotExist) }

// changedSince reports how the directory dir differs from what Write put
// in it (files, by name and size; a LOCK file is allowed, a database
// opened there makes one): "" if it does not. A staged database that a
// server opened and wrote to (between the commit and a crash, say) holds
// other files; it is no longer only kvrflow's copy of the backup.
func (e *Env) changedSince(dir string, written []WrittenFile) (string, error) {
	want := make(map[string]int64, len(written))
	for _, f := range written {
		want[f.Name] = f.Size
	}
	names, err := e.FS.List(dir)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if n == "LOCK" {
			continue
		}
		size, ok := want[n]
		if !ok {
			return fmt.Sprintf("it holds %s, which the run did not write", n), nil
		}
		fi, err := e.FS.Stat(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		if fi.Size() != size {
			return fmt.Sprintf("%s is %d bytes, the run wrote %d", n, fi.Size(), size), nil
		}
	}
	return "", nil
}
