package fsm

import "errors"

var (
	// ErrRolledBack is returned by Execute when a step failed and the run
	// was rolled back: the target is as it was before the run.
	ErrRolledBack = errors.New("rolled back")

	// ErrInFlight is returned when a run can neither go on nor roll back
	// now (its rollback or a step after the commit point kept failing, or
	// the journal could not be written): the run stays in flight in the
	// journal and the next recovery finishes it.
	ErrInFlight = errors.New("run left in flight")

	// ErrIllegal is returned when a transition is not in the definition:
	// a bug, or a journal that does not belong to this workflow.
	ErrIllegal = errors.New("illegal transition")
)

// ErrUndecided is returned (with ErrInFlight) by Recover for a run in an
// External state when no Decider was given; a Decider returns it when
// there is no decision yet.
var ErrUndecided = errors.New("no decision yet")
