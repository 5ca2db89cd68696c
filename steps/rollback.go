package steps

import (
	"context"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
)

// RollbackDetails is journaled when Rollback is done.
type RollbackDetails struct {
	Undone      string       `json:"undone,omitempty"` // the commit plan undone, if any
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// rollback puts DB back as it was before the run and removes staging. If
// Commit was entered, it reads the commit plan from the journal and undoes
// whatever part of it the disk shows was done. Safe to run again at any
// point: every action is chosen from what is on disk now.
func (e *Env) rollback(_ context.Context, _ *fsm.Run) (any, error) {
	var d RollbackDetails
	staging := e.Layout.Staging(e.RunID)
	plan, err := e.lastPlan()
	if err != nil {
		return nil, err
	}
	if plan != nil {
		d.Undone = plan.Plan
		var err error
		switch plan.Plan {
		case PlanFresh:
			err = e.undoFresh(&d)
		case PlanExchange:
			err = e.undoExchange(plan)
		case PlanRename:
			err = e.undoRename(plan, &d)
		default:
			err = fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, plan.Plan)
		}
		if err != nil {
			return d, err
		}
	}
	ok, err := e.FS.Exists(staging)
	if err != nil {
		return d, err
	}
	if ok {
		if err := e.FS.RemoveAllDurable(staging); err != nil {
			return d, err
		}
		d.Removed = append(d.Removed, staging)
	}
	return d, nil
}

// undoFresh: DB did not exist before the run. If the staged directory is
// now DB, it moves back to staging. A DB beside a still-present staging is
// not the run's (or is a duplicate a power loss left): it is quarantined.
func (e *Env) undoFresh(d *RollbackDetails) error {
	db, staging := e.Layout.DB, e.Layout.Staging(e.RunID)
	dbOK, err := e.FS.Exists(db)
	if err != nil || !dbOK {
		return err
	}
	stOK, err := e.FS.Exists(staging)
	if err != nil {
		return err
	}
	if !stOK {
		return e.FS.RenameDurable(db, staging)
	}
	q, err := e.quarantine(db, "appeared at the database path during a restore into a new directory")
	d.Quarantined = append(d.Quarantined, q)
	return err
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

// undoRename moves the old database back from Work/old-N. The renames
// sync the destination's directory before the source's, so after a power
// loss an entry may show under both names, never under neither; each pass
// reads the disk and takes one step toward DB = old, until old-N is gone.
func (e *Env) undoRename(p *CommitPlan, d *RollbackDetails) error {
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
			d.Quarantined = append(d.Quarantined, q)
		case dbOK:
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
