package steps

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
)

// Kept databases. A restore with KeepOld, and every undo, keeps the
// database it displaced as Work/previous-JID-N, N the run that displaced
// it; that run's finished record holds its identity (FinishDetails.Kept).
// Undo brings back the newest; a kept database whose directory is not the
// one its run recorded proves nothing and is quarantined by Clean.

// KeptDB is a kept database the journal proves: its run's record and
// identity match the directory.
type KeptDB struct {
	Run  uint64      `json:"run"`
	Kind string      `json:"kind"` // the run that kept it: restore or undo
	Path string      `json:"path"`
	ID   *fsx.FileID `json:"id,omitempty"`
	Time time.Time   `json:"time"` // when its run ended
	// Files are what it held when it was kept (see Kept.Files).
	Files []WrittenFile `json:"-"`
}

// ListKept returns the kept databases of journal j for the database of
// layout l that the journal proves, oldest first, and the paths of
// previous-JID-N directories of j that it does not prove.
func ListKept(fsys *fsx.FS, l Layout, j *journal.Journal) (kept []KeptDB, unproven []string, err error) {
	names, err := fsys.List(l.Work)
	if err != nil {
		if isNotExist(err) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	jid := j.ID()
	for _, n := range names {
		rd, ok := ParseRunDir(n)
		if !ok || rd.Kind != "previous" || rd.Journal != jid {
			continue
		}
		path := filepath.Join(l.Work, n)
		k, ok, err := provenKept(fsys, l, j, rd.Run, path)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			unproven = append(unproven, path)
			continue
		}
		kept = append(kept, k)
	}
	slices.SortFunc(kept, func(a, b KeptDB) int { return int(a.Run) - int(b.Run) })
	return kept, unproven, nil
}

// provenKept reports whether path is the database run kept, by its
// record: the run restored (or undid) l.DB, committed, and its finished
// record names path with path's identity.
func provenKept(fsys *fsx.FS, l Layout, j *journal.Journal, run uint64, path string) (KeptDB, bool, error) {
	r, err := j.Run(run)
	if err != nil || !SameDB(fsys, r.Target, l.DB) || r.Outcome != OutcomeCommitted {
		return KeptDB{}, false, nil
	}
	evs, err := j.Events(run)
	if err != nil {
		return KeptDB{}, false, err
	}
	for _, ev := range evs {
		if ev.From != StateFinish || ev.To != StateDone {
			continue
		}
		var fd FinishDetails
		// By name: the same database may be reached by another spelling
		// (a bind mount); the identity below is the proof.
		if json.Unmarshal(ev.Details, &fd) != nil || fd.Kept == nil || filepath.Base(fd.Kept.Path) != filepath.Base(path) {
			return KeptDB{}, false, nil
		}
		id, err := fsys.DirID(path)
		if err != nil {
			return KeptDB{}, false, err
		}
		if same, known := fsx.SameID(id, fd.Kept.ID); known && !same {
			return KeptDB{}, false, nil
		}
		return KeptDB{Run: run, Kind: r.Kind, Path: path, ID: fd.Kept.ID, Time: r.End, Files: fd.Kept.Files}, true, nil
	}
	return KeptDB{}, false, nil
}

// keep moves the displaced database at oldAt, whose identity the commit
// plan recorded as want, to Work/previous-JID-N, durably, and returns what
// it kept. Run again after a crash, it finds the move done. A directory at
// oldAt that is not the displaced database is quarantined instead, and
// nothing is kept.
func (e *Env) keep(oldAt string, want *fsx.FileID) (*Kept, error) {
	dst := e.Layout.Previous(e.jid(), e.RunID)
	oldOK, err1 := e.FS.Exists(oldAt)
	dstOK, err2 := e.FS.Exists(dst)
	if err := firstErr(err1, err2); err != nil {
		return nil, err
	}
	check := func(path string) (bool, error) {
		id, err := e.FS.DirID(path)
		if err != nil {
			return false, err
		}
		same, known := fsx.SameID(id, want)
		return same || !known, nil
	}
	switch {
	case oldOK && !dstOK:
		ok, err := check(oldAt)
		if err != nil {
			return nil, err
		}
		if !ok {
			_, err := e.quarantine(oldAt, "not the database run "+fmt.Sprint(e.RunID)+" replaced")
			return nil, err
		}
		if err := e.FS.RenameDurable(oldAt, dst); err != nil {
			return nil, err
		}
	case oldOK && dstOK:
		ok, err := check(dst)
		if err != nil {
			return nil, err
		}
		if !ok {
			// A stranger at this run's own kept name: set it aside, then
			// keep the displaced database there.
			if _, err := e.quarantine(dst, "found at "+dst+" before run "+fmt.Sprint(e.RunID)+" kept the database it replaced there"); err != nil {
				return nil, err
			}
			if err := e.FS.RenameDurable(oldAt, dst); err != nil {
				return nil, err
			}
			break
		}
		// A power loss left the moved directory under both names (the
		// in-memory file systems): the one at dst is kept; the other is
		// set aside, never removed.
		if _, err := e.quarantine(oldAt, "a second copy of "+dst+" left by an interrupted move"); err != nil {
			return nil, err
		}
	case !oldOK && !dstOK:
		return nil, fmt.Errorf("%w: run %d committed but the database it replaced is neither at %s nor at %s", ErrInconsistent, e.RunID, oldAt, dst)
	}
	if ok, err := check(dst); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: %s is not the database run %d replaced", ErrInconsistent, dst, e.RunID)
		}
		return nil, err
	}
	e.Log.Info().Str("kept", dst).Msg("kept the replaced database")
	files, err := e.fileSigs(dst)
	if err != nil {
		return nil, err
	}
	return &Kept{Path: dst, ID: want, Files: files}, nil
}

// fileSigs lists the regular files directly in dir by name and size (a
// LOCK aside), as changedSince compares them.
func (e *Env) fileSigs(dir string) ([]WrittenFile, error) {
	names, err := e.FS.List(dir)
	if err != nil {
		return nil, err
	}
	var out []WrittenFile
	for _, n := range names {
		if n == "LOCK" {
			continue
		}
		fi, err := e.FS.Stat(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, WrittenFile{Name: n, Size: fi.Size()})
	}
	return out, nil
}

// keepRetention removes the proven kept databases of this journal and
// database beyond the newest n, oldest first (asked is the --keep-old
// given, for the log), by proof of identity. A kept database a server has
// open (its LOCK held) stays, with a warning; one whose files differ from
// those it held when it was kept (a server or the operator wrote to it)
// is quarantined, not removed. It returns what it removed.
func (e *Env) keepRetention(n, asked int) ([]string, error) {
	kept, _, err := ListKept(e.FS, e.Layout, e.Journal)
	if err != nil || len(kept) <= n {
		return nil, err
	}
	var d disposal
	for _, k := range kept[:len(kept)-n] {
		l, err := e.lockDir(k.Path)
		if errors.Is(err, ErrInUse) {
			e.Log.Warn().Str("kept", k.Path).Err(err).Msg("a kept database beyond --keep-old is open; left in place")
			continue
		}
		if err != nil {
			return d.removed, err
		}
		if l != nil {
			l.Close()
		}
		if k.Files != nil {
			if why, err := e.changedSince(k.Path, k.Files); err != nil {
				return d.removed, err
			} else if why != "" {
				q, err := e.quarantine(k.Path, "a kept database changed since it was kept ("+why+"); not removed")
				if err != nil {
					return d.removed, err
				}
				d.quarantined = append(d.quarantined, q)
				continue
			}
		}
		if err := e.removeProven(k.Path, k.ID, true, fmt.Sprintf("a kept database of run %d, beyond the %d kept (--keep-old=%d)", k.Run, asked, asked), &d); err != nil {
			return d.removed, err
		}
	}
	return d.removed, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
