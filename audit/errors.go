package audit

import "errors"

var (
	// ErrUnknownKind is returned by Replay for a run whose kind has no
	// workflow in the Workflows given. Verify reports such a run as a
	// problem instead.
	ErrUnknownKind = errors.New("no workflow for the run's kind")

	// ErrFormat is returned by Export and Graph for a format they do not
	// write.
	ErrFormat = errors.New("unknown format")
)
