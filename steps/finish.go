package steps

import (
	"context"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
)

// FinishDetails is journaled when Finish is done.
type FinishDetails struct {
	Removed []string `json:"removed,omitempty"`
}

// finish runs after the commit point: it removes the old database, which
// the journal proves superseded (the run committed), and any copy left of
// staging. It first checks that DB is the new database, and removes
// nothing if it is not. Safe to run again.
func (e *Env) finish(_ context.Context, _ *fsm.Run) (any, error) {
	plan, err := e.lastPlan()
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return nil, fmt.Errorf("%w: run %d committed without a commit plan", ErrInconsistent, e.RunID)
	}
	ok, err := e.FS.Exists(e.Layout.DB)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: run %d committed but %s is missing", ErrInconsistent, e.RunID, e.Layout.DB)
	}
	var d FinishDetails
	var remove []string
	switch plan.Plan {
	case PlanExchange:
		id, err := e.FS.FileID(e.Layout.DB)
		if err != nil {
			return nil, err
		}
		if id != *plan.StagingID {
			return nil, fmt.Errorf("%w: run %d committed but %s is not the staged directory (inode %d, want %d)",
				ErrInconsistent, e.RunID, e.Layout.DB, id.Ino, plan.StagingID.Ino)
		}
		remove = []string{plan.Staging} // holds the old database now
	case PlanRename:
		remove = []string{plan.Old, plan.Staging}
	case PlanFresh:
		remove = []string{plan.Staging}
	default:
		return nil, fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, plan.Plan)
	}
	for _, p := range remove {
		ok, err := e.FS.Exists(p)
		if err != nil {
			return d, err
		}
		if !ok {
			continue
		}
		if err := e.FS.RemoveAllDurable(p); err != nil {
			return d, err
		}
		d.Removed = append(d.Removed, p)
	}
	return d, nil
}
