package journal

import "errors"

var (
	// ErrLocked is returned by Open when another process holds the journal
	// and did not release it within the timeout.
	ErrLocked = errors.New("journal is in use by another process")

	// ErrNewerSchema is returned by Open when the journal was written by a
	// newer kvrflow whose layout this one does not know.
	ErrNewerSchema = errors.New("journal written by a newer kvrflow")

	// ErrOldSchema is returned by a read-only Open of a journal of an older
	// schema: a read-write Open migrates it.
	ErrOldSchema = errors.New("journal written by an older kvrflow")

	// ErrCorrupt is returned when the journal file is not a journal, is
	// damaged, or holds records that contradict each other.
	ErrCorrupt = errors.New("journal is unreadable or inconsistent")

	// ErrNotFound is returned for a run id the journal does not hold.
	ErrNotFound = errors.New("no such run")

	// ErrConflict is returned by Append when the transition does not start
	// from the run's current state, or the run has already ended.
	ErrConflict = errors.New("transition does not follow the run's journaled state")
)
