package steps

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// RollbackDetails is journaled when Rollback is done.
type RollbackDetails struct {
	Undone      string       `json:"undone,omitempty"` // the commit plan undone, if any
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
	// Trash is the staging an interrupted run moved aside instead of
	// removing it (see rollback); the next restore or recover removes it.
	Trash *Kept `json:"trash,omitempty"`
}

// rollback puts DB back as it was before the run and removes staging. If
// Commit was entered, it reads the commit plan from the journal and undoes
// whatever part of it the disk shows was done. Staging is removed only if
// the journal proves it is the directory Write made (see removeProven).
// Safe to run again at any point: every action is chosen from what is on
// disk now.
func (e *Env) rollback(_ context.Context, r *fsm.Run) (any, error) {
	var d RollbackDetails
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	var disp disposal
	if plan := n.plan; plan != nil {
		d.Undone = plan.Plan
		if err := e.undoPlan(plan, &disp); err != nil {
			d.Quarantined = disp.quarantined
			return d, err
		}
	}
	var want *fsx.FileID
	if n.staging != nil {
		want = n.staging.ID
	}
	staging := e.stagingPath(n)
	if n.written != nil && n.plan != nil {
		// The staged database may have been DB for a while: if a server
		// opened it there and wrote to it, it is not only the run's copy
		// of the backup any more. Keep it.
		if why, err := e.changedSince(staging, n.written); err != nil && !isNotExist(err) {
			return d, err
		} else if why != "" {
			q, err := e.quarantine(staging, "the staged database was changed after the run wrote it ("+why+"): a server may have used it; kept")
			if err == nil {
				disp.quarantined = append(disp.quarantined, q)
			}
			d.Removed, d.Quarantined = disp.removed, disp.quarantined
			return d, err
		}
	}
	interrupted := r != nil && errors.Is(r.Cause(), context.Canceled)
	// A full disk wants its space back more than a resume.
	full := r != nil && (errors.Is(r.Cause(), syscall.ENOSPC) || errors.Is(r.Cause(), ErrNoSpace))
	if n.staging != nil && n.plan == nil && (interrupted || n.resumable() && !full) {
		// Interrupted (SIGINT, SIGTERM) while writing: removing gigabytes
		// can take the file system seconds (a TRIM per extent on a disk
		// mounted with discard). The run's own staging, proven by its
		// identity, is moved to its trash name in one rename instead, so
		// the process stops at once; the next restore (Clean) or recover
		// removes it by the same proof. So is a staging that holds files
		// Write journaled complete, whatever stopped the run (a crash, a
		// kill, an error other than a full disk): a restore of the same
		// source resumes from it (see Resume).
		if t, err := e.trash(staging, n.staging.ID); err != nil || t != nil {
			d.Trash = t
			if err == nil {
				// A power loss on the in-memory file systems may leave the
				// moved directory under both names: the run's own at
				// staging goes by proof (on a disk, nothing is there).
				err = e.removeProven(staging, want, true, fmt.Sprintf("run %d's staging directory, also at %s", e.RunID, t.Path), &disp)
			}
			d.Removed, d.Quarantined = disp.removed, disp.quarantined
			return d, err
		}
	}
	if n.staging != nil {
		// Set aside before a crash by an interrupted rollback: keep the
		// proof in this record, for recover or Clean to remove it.
		if id, err := e.FS.DirID(e.Layout.Trash(e.jid(), e.RunID)); err == nil {
			if same, known := fsx.SameID(id, n.staging.ID); same || !known {
				files, err := e.fileSigs(e.Layout.Trash(e.jid(), e.RunID))
				if err != nil {
					return d, err
				}
				d.Trash = &Kept{Path: e.Layout.Trash(e.jid(), e.RunID), ID: n.staging.ID, Files: files}
			}
		}
	}
	err = e.removeProven(staging, want, n.staging != nil, fmt.Sprintf("run %d's staging directory", e.RunID), &disp)
	d.Removed, d.Quarantined = disp.removed, disp.quarantined
	return d, err
}

// trash moves staging, if it is the directory the journal recorded
// (identity want), to the run's trash name, durably, and returns what it
// moved; nil if there was nothing to move (or it is not the run's: then
// the caller's removal by proof decides).
func (e *Env) trash(staging string, want *fsx.FileID) (*Kept, error) {
	dst := e.Layout.Trash(e.jid(), e.RunID)
	if id, err := e.FS.DirID(dst); err == nil {
		if same, known := fsx.SameID(id, want); same || !known {
			// Moved before a crash: the run's own.
			files, err := e.fileSigs(dst)
			return &Kept{Path: dst, ID: want, Files: files}, err
		}
		// A stranger at the run's trash name: set it aside first.
		if _, err := e.quarantine(dst, "found at "+dst+" before run "+fmt.Sprint(e.RunID)+" set its partial staging aside there"); err != nil {
			return nil, err
		}
	} else if !isNotExist(err) {
		return nil, err
	}
	id, err := e.FS.DirID(staging)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	if same, known := fsx.SameID(id, want); known && !same {
		return nil, nil
	}
	// What it holds is journaled with it: the removal later checks that
	// nothing was added or changed since (an operator's file, a stranger
	// at a reused inode).
	files, err := e.fileSigs(staging)
	if err != nil {
		return nil, err
	}
	if err := e.FS.RenameDurable(staging, dst); err != nil {
		return nil, err
	}
	e.Log.Info().Str("trash", dst).Msg("interrupted: the partial staging is set aside; a restore of the same source resumes from it, another restore removes it")
	return &Kept{Path: dst, ID: want, Files: files}, nil
}
