package kvrflow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// checkpointFS is the file system Backup opens the database with. Pebble's
// checkpoint writes the MANIFEST, OPTIONS and WAL files into the backup
// as new files, and puts the tables and blob files there with
// vfs.LinkOrCopy, which is a hard link unless the link fails, when Pebble
// copies silently. checkpointFS makes that choice explicit: Link of a file
// into the backup directory is a durable copy (fsx.CopyFile) in copy mode,
// a hard link otherwise, with a failed link (another file system behind a
// bind mount, say) copied by fsx.CopyFile too and counted, so the result
// says what the backup is. Links elsewhere pass through.
type checkpointFS struct {
	vfs.FS
	ctx    context.Context
	seam   *fsx.FS
	out    string // absolute, with a trailing separator
	copy   bool
	why    string
	buf    []byte
	linked int
	copied int
}

var _ vfs.FS = (*checkpointFS)(nil)

// newCheckpointFS returns the checkpointFS for a backup of db in out:
// copying when copy is set or when out's parent is on another file system
// (another device) than db.
func newCheckpointFS(ctx context.Context, seam *fsx.FS, db, out string, copy bool) (*checkpointFS, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	c := &checkpointFS{FS: seam.VFS(), ctx: ctx, seam: seam, out: abs + string(filepath.Separator), copy: copy}
	if copy {
		c.why = "--copy"
		return c, nil
	}
	a, errA := seam.DirID(db)
	b, errB := seam.DirID(filepath.Dir(abs))
	if err := errors.Join(errA, errB); err != nil {
		return nil, err
	}
	if a != nil && b != nil && a.Dev != b.Dev {
		c.copy, c.why = true, "--to is on another file system than --db"
	}
	return c, nil
}

// Link puts oldname at newname: see checkpointFS.
func (c *checkpointFS) Link(oldname, newname string) error {
	abs, err := filepath.Abs(newname)
	if err != nil || !strings.HasPrefix(abs, c.out) {
		return c.FS.Link(oldname, newname)
	}
	if !c.copy {
		err := c.FS.Link(oldname, newname)
		if err == nil {
			c.linked++
			return nil
		}
		// As vfs.LinkOrCopy: these errors a copy would not mend.
		if errors.Is(err, os.ErrExist) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return err
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, fsx.BufferSize)
	}
	// Pebble syncs the backup directory once all files are in.
	if _, _, err := c.seam.CopyFile(c.ctx, oldname, newname, fsx.Want{}, c.buf, nil); err != nil {
		return err
	}
	c.copied++
	return nil
}

// mode reports what the backup is: linked if any table is a hard link to
// the database's file (a database with no tables is "copied": it shares
// nothing), and why.
func (c *checkpointFS) mode() (BackupMode, string) {
	switch {
	case c.linked > 0 && c.copied > 0:
		return BackupLinked, "hard links on the same file system; some links failed and those files were copied"
	case c.linked > 0:
		return BackupLinked, "hard links: --to is on the same file system as --db"
	case c.copy:
		return BackupCopied, c.why
	case c.copied > 0:
		return BackupCopied, "hard links failed"
	}
	return BackupCopied, "no tables to link"
}
