package steps

import (
	"context"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// RollbackDetails is journaled when Rollback is done.
type RollbackDetails struct {
	Undone      string       `json:"undone,omitempty"` // the commit plan undone, if any
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// rollback puts DB back as it was before the run and removes staging. If
// Commit was entered, it reads the commit plan from the journal and undoes
// whatever part of it the disk shows was done. Staging is removed only if
// the journal proves it is the directory Write made (see removeProven).
// Safe to run again at any point: every action is chosen from what is on
// disk now.
func (e *Env) rollback(_ context.Context, _ *fsm.Run) (any, error) {
	var d RollbackDetails
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	var disp disposal
	if plan := n.plan; plan != nil {
		d.Undone = plan.Plan
		var err error
		switch plan.Plan {
		case PlanFresh:
			err = e.undoFresh(plan, &disp)
		case PlanExchange:
			err = e.undoExchange(plan)
		case PlanRename:
			err = e.undoRename(plan, &disp)
		default:
			err = fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, plan.Plan)
		}
		if err != nil {
			d.Quarantined = disp.quarantined
			return d, err
		}
	}
	var want *fsx.FileID
	if n.staging != nil {
		want = n.staging.ID
	}
	err = e.removeProven(e.stagingPath(n), want, n.staging != nil, fmt.Sprintf("run %d's staging directory", e.RunID), &disp)
	d.Removed, d.Quarantined = disp.removed, disp.quarantined
	return d, err
}

// undoFresh: DB did not exist before the run. If the staged directory is
// now DB, it moves back to staging. A DB beside a still-present staging is
// not the run's (or is a duplicate a power loss left): it is quarantined.
// A DB that is not the staged directory (its identity says so) was put
// there by someone else: it is left alone.
func (e *Env) undoFresh(p *CommitPlan, d *disposal) error {
	db, staging := p.DB, p.Staging
	dbOK, err := e.FS.Exists(db)
	if err != nil || !dbOK {
		return err
	}
	stOK, err := e.FS.Exists(staging)
	if err != nil {
		return err
	}
	if stOK {
		q, err := e.quarantine(db, "appeared at the database path during a restore into a new directory")
		if err == nil {
			d.quarantined = append(d.quarantined, q)
		}
		return err
	}
	id, err := e.FS.DirID(db)
	if err != nil {
		return err
	}
	if same, known := fsx.SameID(id, p.StagingID); known && !same {
		e.Log.Warn().Str("db", db).Msg("the database path holds a directory this run did not make; left as it is")
		return nil
	}
	return e.FS.RenameDurable(db, staging)
}

// undoExchange swaps back if DB is the staged directory. DB is identified
// by its inode, journaled before the exchange.
func (e *Env) undoExchange(p *CommitPlan) error {
	id, err := e.FS.FileID(p.DB)
	if err != nil {
		return err
	}
	switch id {
	case *p.DBID:
		return nil
	case *p.StagingID:
		return e.FS.Exchange(p.Staging, p.DB)
	default:
		return fmt.Errorf("%w: %s is neither the old database (inode %d) nor the staged one (inode %d): inode %d",
			ErrInconsistent, p.DB, p.DBID.Ino, p.StagingID.Ino, id.Ino)
	}
}

// undoRename moves the old database back from Work/old-JID-N. The renames
// sync the destination's directory before the source's, so after a power
// loss an entry may show under both names, never under neither; each pass
// reads the disk and takes one step toward DB = old, until old-N is gone.
// A DB that is neither old-N's twin nor the staged directory (by identity,
// where the file system has one) is quarantined, not moved into staging.
func (e *Env) undoRename(p *CommitPlan, d *disposal) error {
	for {
		oldOK, err1 := e.FS.Exists(p.Old)
		dbOK, err2 := e.FS.Exists(p.DB)
		stOK, err3 := e.FS.Exists(p.Staging)
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				return err
			}
		}
		switch {
		case !oldOK && dbOK:
			return nil // DB is the old database
		case !oldOK:
			return fmt.Errorf("%w: neither %s nor %s exists", ErrInconsistent, p.DB, p.Old)
		case dbOK && stOK:
			// old-N holds the old database; DB is a duplicate a power loss
			// left of a rename whose source entry was not yet removed.
			q, err := e.quarantine(p.DB, "duplicate left at the database path by an interrupted commit; "+p.Old+" holds the old database")
			if err != nil {
				return err
			}
			d.quarantined = append(d.quarantined, q)
		case dbOK:
			id, err := e.FS.DirID(p.DB)
			if err != nil {
				return err
			}
			if same, known := fsx.SameID(id, p.StagingID); known && !same {
				q, err := e.quarantine(p.DB, "found at the database path during the rollback of a commit; not the staged database ("+p.Old+" holds the old one)")
				if err != nil {
					return err
				}
				d.quarantined = append(d.quarantined, q)
				continue
			}
			if err := e.FS.RenameDurable(p.DB, p.Staging); err != nil {
				return err
			}
		default:
			if err := e.FS.RenameDurable(p.Old, p.DB); err != nil {
				return err
			}
		}
	}
}
