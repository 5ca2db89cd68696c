package chaos

import "errors"

// ErrNotEmpty is returned by Scratch when the directory given holds
// entries: chaos works only in a directory it creates or that is empty.
var ErrNotEmpty = errors.New("scratch directory not empty")

// ErrSetup is returned by New when the backup cannot be used for the
// self-test: a clean restore of it fails, or it holds the same files as
// the old database (nothing to tell apart).
var ErrSetup = errors.New("chaos setup failed")
