package steps

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// CleanDetails is journaled when Clean is done.
type CleanDetails struct {
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// Quarantine records a leftover moved aside.
type Quarantine struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// clean removes what the journal proves, by identity, to be this
// journal's garbage and moves every other leftover into the quarantine
// directory. It deletes only a staging-JID-N or old-JID-N directory of an
// ended run of this journal and this database whose identity is the one
// that run journaled (see removeProven); it never touches the journal
// (whatever spelling of its path was given), kvrflow's lock, the
// quarantine, or another journal's run directories (Precheck refused the
// run if there were any).
func (e *Env) clean(ctx context.Context, _ *fsm.Run) (any, error) {
	var disp disposal
	names, err := e.FS.List(e.Layout.Work)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{JournalName: true, LockName: true, QuarantineName: true}
	journalID := e.journalFileID()
	for _, name := range names {
		if keep[name] {
			continue
		}
		path := filepath.Join(e.Layout.Work, name)
		if e.isJournal(path, journalID) {
			continue
		}
		if isBoltFile(e.FS, path) {
			// Another journal kept here (--journal DB.kvrflow/NAME.db):
			// never moved, or that journal would start again empty.
			e.Log.Info().Str("path", path).Msg("another journal file in kvrflow's directory; left in place")
			continue
		}
		rd, ok := ParseRunDir(name)
		if ok && rd.Journal != e.jid() {
			continue // another journal's: Precheck refused to run beside it
		}
		if ok && rd.Run != e.RunID {
			if err := e.cleanRunDir(path, rd, &disp, true); err != nil {
				return CleanDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
			}
			continue
		}
		q, err := e.quarantine(path, "unknown entry in "+e.Layout.Work)
		if err != nil {
			return CleanDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
		}
		disp.quarantined = append(disp.quarantined, q)
	}
	tmp := e.Layout.KvrocksTmp()
	if ok, err := e.FS.Exists(tmp); err != nil {
		return CleanDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
	} else if ok {
		q, err := e.quarantine(tmp, "stale "+filepath.Base(tmp)+" (left by an interrupted Kvrocks or manual restore); not kvrflow's, kept intact")
		if err != nil {
			return CleanDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
		}
		disp.quarantined = append(disp.quarantined, q)
	}
	return CleanDetails{Removed: disp.removed, Quarantined: disp.quarantined}, nil
}

// cleanRunDir disposes of path, a run directory of this journal's run
// rd.Run found by Clean. An ended run of this database removed its
// directories before it ended, so one found now is garbage only if the
// journal proves it by identity: the staging directory Write recorded
// (the run rolled back, or committed with a plan that left no old database
// there), or the old database the commit plan recorded (the run
// committed). Anything else is quarantined. With keepResumable, the
// proven trash of a run whose Write journaled complete files, of this
// run's source (in recovery: of any), is kept for Write to resume from
// (see Resume).
func (e *Env) cleanRunDir(path string, rd RunDir, d *disposal, keepResumable bool) error {
	r, err := e.Journal.Run(rd.Run)
	var why string
	switch {
	case err != nil:
		why = fmt.Sprintf("run %d is not in the journal", rd.Run)
	case !SameDB(e.FS, r.Target, e.Layout.DB):
		why = fmt.Sprintf("run %d restored %s, not %s", rd.Run, r.Target, e.Layout.DB)
	case r.InFlight():
		why = fmt.Sprintf("run %d is still in flight", rd.Run)
	}
	if why == "" && rd.Kind == "previous" {
		_, ok, err := provenKept(e.FS, e.Layout, e.Journal, rd.Run, path)
		if err != nil || ok {
			return err // a kept database: undo brings it back
		}
		why = fmt.Sprintf("run %d has no record of keeping %s", rd.Run, path)
	}
	if why == "" {
		n, err := e.notes(rd.Run)
		if err != nil {
			return err
		}
		var want *fsx.FileID
		recorded := false
		switch {
		case rd.Kind == "trash" && n.trash != nil:
			want, recorded = n.trash.ID, true // an interrupted run's partial staging
		case rd.Kind == "staging" && n.plan != nil && n.plan.Plan == PlanExchange && r.Outcome == OutcomeCommitted:
			want, recorded = n.plan.DBID, true // the old database, after the exchange
		case rd.Kind == "staging" && n.staging != nil:
			want, recorded = n.staging.ID, true
		case rd.Kind == "old" && n.plan != nil && n.plan.Plan == PlanRename && r.Outcome == OutcomeCommitted:
			want, recorded = n.plan.DBID, true
		}
		if recorded && rd.Kind == "trash" && n.trash.Files != nil {
			// The trash must hold what the run set aside, nothing more.
			if why, err := e.changedSince(path, n.trash.Files); err != nil {
				return err
			} else if why != "" {
				q, err := e.quarantine(path, "the partial staging run "+fmt.Sprint(rd.Run)+" set aside changed since ("+why+"); not removed")
				if err == nil {
					d.quarantined = append(d.quarantined, q)
				}
				return err
			}
		}
		if recorded && rd.Kind == "trash" && keepResumable && n.resumable() && e.sameSource(r.Source) {
			// Unchanged and the run's own: kept for a resume (see Resume).
			id, err := e.FS.DirID(path)
			if err != nil {
				return err
			}
			if same, known := fsx.SameID(id, want); same || !known {
				d.kept = append(d.kept, path)
				return nil
			}
		}
		if recorded {
			return e.removeProven(path, want, true, fmt.Sprintf("a directory of run %d, which ended %s", rd.Run, r.Outcome), d)
		}
		why = fmt.Sprintf("run %d ended %s with no record of its %s directory", rd.Run, r.Outcome, rd.Kind)
	}
	q, err := e.quarantine(path, why)
	if err == nil {
		d.quarantined = append(d.quarantined, q)
	}
	return err
}

// journalFileID is the identity of the journal file, nil where unknown.
func (e *Env) journalFileID() *fsx.FileID {
	if e.Journal == nil {
		return nil
	}
	id, err := e.FS.DirID(e.Journal.Path())
	if err != nil {
		return nil
	}
	return id
}

// isJournal reports whether path is the journal file, whatever spelling
// of the journal's path was given: by identity, or by resolved path.
func (e *Env) isJournal(path string, journalID *fsx.FileID) bool {
	if e.Journal == nil {
		return false
	}
	if id, err := e.FS.DirID(path); err == nil {
		if same, known := fsx.SameID(id, journalID); known {
			return same
		}
	}
	jp, err := filepath.Abs(e.Journal.Path())
	if err != nil {
		return false
	}
	return e.FS.Resolve(jp) == e.FS.Resolve(path)
}

// quarantine moves path into the quarantine directory, durably, under a
// name that says which run moved it.
func (e *Env) quarantine(path, reason string) (Quarantine, error) {
	if err := e.FS.EnsureDir(e.Layout.Quarantine); err != nil {
		return Quarantine{}, err
	}
	base := fmt.Sprintf("run%d-%s", e.RunID, filepath.Base(path))
	dst := filepath.Join(e.Layout.Quarantine, base)
	for i := 1; ; i++ {
		ok, err := e.FS.Exists(dst)
		if err != nil {
			return Quarantine{}, err
		}
		if !ok {
			break
		}
		dst = filepath.Join(e.Layout.Quarantine, fmt.Sprintf("%s.%d", base, i))
	}
	if err := e.FS.RenameDurable(path, dst); err != nil {
		return Quarantine{}, err
	}
	e.Log.Warn().Str("path", path).Str("moved_to", dst).Str("reason", reason).Msg("quarantined leftover")
	return Quarantine{From: path, To: dst, Reason: reason}, nil
}

// boltMagic is the magic number of a bbolt file's meta page, stored
// little-endian right after the 16-byte page header of its first page.
const boltMagic = 0xED0CDAED

// isBoltFile reports whether path is a regular file that starts as a
// bbolt file does (a journal).
func isBoltFile(fsys *fsx.FS, path string) bool {
	if m, err := fsys.LstatMode(path); err != nil || !m.IsRegular() {
		return false
	}
	f, err := fsys.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [20]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return false
	}
	return binary.LittleEndian.Uint32(head[16:]) == boltMagic
}

// RemoveTrash removes the trash of ended runs of this journal (the
// partial staging an interrupted run set aside), by the proof its
// rollback journaled; anything else named like it is quarantined. The
// trash of a run whose Write journaled complete files is kept for a
// restore of the same source to resume from (in recovery, with no
// source: whatever the next source): kept lists it. It returns what it
// removed. Recover calls it; a restore's Clean does the same.
func (e *Env) RemoveTrash() (removed, kept []string, quarantined []Quarantine, err error) {
	names, err := e.FS.List(e.Layout.Work)
	if err != nil {
		if isNotExist(err) {
			return nil, nil, nil, nil
		}
		return nil, nil, nil, err
	}
	var d disposal
	for _, name := range names {
		rd, ok := ParseRunDir(name)
		if !ok || rd.Kind != "trash" || rd.Journal != e.jid() {
			continue
		}
		if err := e.cleanRunDir(filepath.Join(e.Layout.Work, name), rd, &d, true); err != nil {
			return d.removed, d.kept, d.quarantined, err
		}
	}
	return d.removed, d.kept, d.quarantined, nil
}
