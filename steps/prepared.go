package steps

import (
	"context"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
)

// prepared is the step of the prepared state: it does nothing. The state
// is the point where the new database is staged, verified and durable and
// the database's locks are held; a cluster node's run stops on entering
// it (see Env.Prepare) until the cluster decides, and any other run
// passes through at once. Its step runs when the decision is commit.
func (e *Env) prepared(context.Context, *fsm.Run) (any, error) { return nil, nil }

// PreparedTag returns the cluster restore that run id of j was prepared
// for (Env.Prepare, as Precheck journaled it), or "" for a run that is no
// cluster node's.
func PreparedTag(j *journal.Journal, id uint64) (string, error) {
	e := &Env{Journal: j}
	n, err := e.notes(id)
	if err != nil {
		return "", err
	}
	return n.prepare, nil
}

// PreparedDecider returns the Decider of a restore run found by recovery
// in an External state (prepared or commit). A run that is no cluster
// node's was interrupted before its commit point, and is rolled back as
// always. A cluster node's run in commit entered it only after the
// cluster decided commit (prepared -decided-> commit is journaled then):
// it goes forward. A cluster node's run in prepared is decided by cluster
// (nil: it stays prepared, and recovery's error matches
// fsm.ErrUndecided).
func PreparedDecider(j *journal.Journal, cluster fsm.Decider) fsm.Decider {
	return fsm.DeciderFunc(func(ctx context.Context, run uint64, state string) (fsm.Decision, error) {
		tag, err := PreparedTag(j, run)
		if err != nil {
			return 0, err
		}
		switch {
		case tag == "":
			return fsm.RollBack, nil
		case state == StateCommit:
			return fsm.Resume, nil
		case cluster == nil:
			return 0, fmt.Errorf("%w: run %d is prepared for the cluster restore %s, which decides it (kvrflow cluster agent, or recover --decision)", fsm.ErrUndecided, run, tag)
		}
		return cluster.Decide(ctx, run, state)
	})
}
