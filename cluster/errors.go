package cluster

import (
	"errors"

	"github.com/kvrflow/kvrflow/fsm"
)

var (
	// ErrBadPlan is returned by ParsePlan and Coordinate for a plan that
	// does not parse or is not valid (no name, no node, a node twice, a
	// node without a source); the message is one line naming the problem.
	ErrBadPlan = errors.New("bad cluster plan")

	// ErrUndecided is returned when no decision (or no outcome) was
	// reached: the coordinator's wait ended, or a node found its run
	// prepared and etcd did not answer or has no decision yet. The run
	// stays prepared; nothing was guessed. The CLI maps it to exit 5. It
	// matches fsm.ErrUndecided.
	ErrUndecided error = undecidedError{}

	// ErrAborted is returned when the decision is abort: every node keeps
	// (or got back) its old database. The CLI maps it to exit 1.
	ErrAborted = errors.New("cluster restore aborted")

	// ErrStale is returned by an agent asked to act for an attempt that
	// is no longer the restore's current one (fencing).
	ErrStale = errors.New("stale cluster restore attempt")
)

// ErrUntrusted is returned for what etcd holds but kvrflow's own
// transactions cannot have written: a commit decision while a vote of the
// plan is not "prepared". No node applies it: a prepared run stays
// prepared (callers wrap it as ErrUndecided, exit 5).
var ErrUntrusted = errors.New("cluster restore state in etcd not written by kvrflow")

// ErrNotFound is returned by Status for a restore name etcd holds no
// attempt of.
var ErrNotFound = errors.New("no such cluster restore")

// undecidedError is ErrUndecided: it matches fsm.ErrUndecided, and says
// "not finished" rather than "no decision yet", which is false when the
// decision is there but not every node reported its outcome.
type undecidedError struct{}

func (undecidedError) Error() string        { return "cluster restore not finished" }
func (undecidedError) Is(target error) bool { return target == fsm.ErrUndecided }
