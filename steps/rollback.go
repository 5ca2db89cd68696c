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
	err = e.removeProven(staging, want, n.staging != nil, fmt.Sprintf("run %d's staging directory", e.RunID), &disp)
	d.Removed, d.Quarantined = disp.removed, disp.quarantined
	return d, err
}
