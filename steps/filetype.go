package steps

import (
	"errors"
	"fmt"
	"os"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// sourceErr classes an error met reading a source file: a file that is
// not a regular file (or is reached through something other than
// directories) or that grew beyond its listed size is an invalid backup
// (ErrBadSource); one replaced since it was checked is ErrChecksum, as a
// source changing during the restore is. Other errors are returned as
// they are.
func sourceErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fsx.ErrNotRegular):
		return fmt.Errorf("%w: %w (a backup holds only regular files and directories)", ErrBadSource, err)
	case errors.Is(err, fsx.ErrGrew):
		return fmt.Errorf("%w: %w", ErrBadSource, err)
	case errors.Is(err, fsx.ErrReplaced):
		return fmt.Errorf("%w: %w", ErrChecksum, err)
	}
	return err
}

// checkRegular checks, before anything is opened, that rel names a
// regular file under the source directory dir, reached through
// directories only (fsx.FS.CheckRegular): anything else is ErrBadSource
// naming the path and what it is, a missing file ErrBadSource too.
func checkRegular(fs *fsx.FS, dir, rel string) error {
	_, err := fs.CheckRegular(dir, rel)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: listed file missing: %w", ErrBadSource, err)
	}
	return sourceErr(err)
}
