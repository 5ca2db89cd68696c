package fsm

import "errors"

var (
	// ErrRolledBack is returned by Execute when a step failed and the run
	// was rolled back: the target is as it was before the run.
	ErrRolledBack = errors.New("rolled back")

	// ErrIllegal is returned when a transition is not in the definition:
	// a bug, or a journal that does not belong to this workflow.
	ErrIllegal = errors.New("illegal transition")
)
