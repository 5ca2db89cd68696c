package steps

import (
	"context"

	"github.com/kvrflow/kvrflow/fsm"
)

// finish is the restore's Finish step, after the commit point: the
// replaced database is removed by proof, or kept (KeepOld) as
// previous-JID-N, and then kept generations beyond KeepOld are removed
// (see finishPlan and keepRetention).
func (e *Env) finish(_ context.Context, _ *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	inc := &proof{recorded: n.staging != nil}
	if n.staging != nil {
		inc.id = n.staging.ID
	}
	// As Precheck journaled it: recovery, which resumes a Finish, has no
	// --keep-old of its own.
	keepOld := max(n.keepOld, e.KeepOld)
	keep := keepOld > 0 && (n.target == TargetPebble || n.target == TargetRocksDB)
	fd, err := e.finishPlan(n, keep, inc)
	if err != nil || !keep {
		return fd, err
	}
	// This run's own kept database is proven only once its finished
	// record is journaled: keep KeepOld-1 of the others.
	removed, err := e.keepRetention(keepOld-1, keepOld)
	fd.Removed = append(fd.Removed, removed...)
	return fd, err
}
