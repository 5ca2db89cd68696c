package check

import "errors"

// ErrViolated is returned (wrapped, with what was found) when the
// invariant does not hold: DB is neither database, the journal disagrees
// with it or has a run in flight, a run's directories are left behind,
// or DB or the journal cannot be read at all.
var ErrViolated = errors.New("invariant violated")

// ErrBadTarget is returned when a Target cannot be checked as given: no
// DB, a database described by nothing, or an old and a new database that
// are the same.
var ErrBadTarget = errors.New("bad check target")
