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
		if err := e.undoPlan(plan, &disp); err != nil {
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
