package steps

import (
	"context"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// FinishDetails is journaled when Finish is done.
type FinishDetails struct {
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// finish runs after the commit point: it removes the old database, which
// the journal proves superseded (the run committed), and any copy left of
// staging. It first checks, by identity where the file system has one,
// that DB is the new database, and removes nothing if it is not. It
// removes the old database only if it is the directory the commit plan
// recorded as DB's; what Precheck found to be no database (a target
// replaced with Force) is quarantined rather than removed. Safe to run
// again.
func (e *Env) finish(_ context.Context, _ *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	plan := n.plan
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
	id, err := e.FS.DirID(e.Layout.DB)
	if err != nil {
		return nil, err
	}
	if same, known := fsx.SameID(id, plan.StagingID); known && !same {
		return nil, fmt.Errorf("%w: run %d committed but %s is not the staged directory (inode %d, want %d)",
			ErrInconsistent, e.RunID, e.Layout.DB, id.Ino, plan.StagingID.Ino)
	}
	var oldAt string // where the old database is now, if the plan kept one
	switch plan.Plan {
	case PlanExchange:
		oldAt = plan.Staging
	case PlanRename:
		oldAt = plan.Old
	case PlanFresh:
	default:
		return nil, fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, plan.Plan)
	}
	var disp disposal
	if oldAt != "" {
		what := fmt.Sprintf("the database run %d replaced", e.RunID)
		if n.target == TargetOther {
			// Replaced with Force: not a database; the operator keeps it.
			if ok, err := e.FS.Exists(oldAt); err != nil {
				return nil, err
			} else if ok {
				q, err := e.quarantine(oldAt, "the directory run "+fmt.Sprint(e.RunID)+" replaced with --force held no database; kept intact")
				if err != nil {
					return FinishDetails{Quarantined: disp.quarantined}, err
				}
				disp.quarantined = append(disp.quarantined, q)
			}
		} else if err := e.removeProven(oldAt, plan.DBID, true, what, &disp); err != nil {
			return FinishDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
		}
	}
	if plan.Plan != PlanExchange {
		// A copy of staging a power loss left beside the new DB (in-memory
		// file systems; on a real disk a directory has one name).
		var want *fsx.FileID
		if n.staging != nil {
			want = n.staging.ID
		}
		if err := e.removeProven(plan.Staging, want, n.staging != nil, fmt.Sprintf("run %d's staging directory", e.RunID), &disp); err != nil {
			return FinishDetails{Removed: disp.removed, Quarantined: disp.quarantined}, err
		}
	}
	return FinishDetails{Removed: disp.removed, Quarantined: disp.quarantined}, nil
}
