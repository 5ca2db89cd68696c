package kvrflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/steps"
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

// An upload directory, DB.kvrflow/upload-ID, is where BackupTo makes the
// checkpoint it uploads (in upload-ID/checkpoint). It is kvrflow's own,
// and provably so: upload-ID/KVRFLOW-UPLOAD, written durably right after
// the directory is made and before anything else goes in, names ID, the
// database, the URL and the directory's identity (device, inode). A
// directory is removed only when its name, its marker and its identity
// all agree (uploadWork.prove); anything else at an upload-* name is left
// in place and reported, never removed.
const (
	uploadPrefix     = "upload-"
	uploadMarkerName = "KVRFLOW-UPLOAD"
	uploadCheckpoint = "checkpoint"
	maxMarkerSize    = 64 << 10
)

// uploadMarker is the content of KVRFLOW-UPLOAD.
type uploadMarker struct {
	ID      string      `json:"id"`
	DB      string      `json:"db"`
	URL     string      `json:"url"` // secrets removed
	Dir     *fsx.FileID `json:"dir,omitempty"`
	Created time.Time   `json:"created"`
}

// uploadDir is one proven upload directory.
type uploadDir struct {
	path     string
	mark     uploadMarker
	manifest *manifest.Manifest // nil: the checkpoint is not complete
}

func (d *uploadDir) checkpoint() string { return filepath.Join(d.path, uploadCheckpoint) }

// uploadWork is kvrflow's directory of one database, locked for a backup
// to object storage: no restore, recover or other backup runs there
// meanwhile (a restore's Clean would quarantine an upload directory).
type uploadWork struct {
	seam   *fsx.FS
	layout steps.Layout
	lock   io.Closer
}

// openUploadWork creates DB.kvrflow if needed and takes kvrflow's lock on
// db (steps.ErrInUse if another kvrflow holds it).
func openUploadWork(seam *fsx.FS, db string) (*uploadWork, error) {
	layout, err := steps.NewLayout(db)
	if err != nil {
		return nil, err
	}
	layout = layout.Resolved(seam.Resolve)
	if err := steps.CheckWork(seam, layout); err != nil {
		return nil, err
	}
	if err := seam.EnsureDir(layout.Work); err != nil {
		return nil, fmt.Errorf("%w: create kvrflow's directory: %w", steps.ErrBadPath, err)
	}
	lock, err := seam.Lock(layout.Lock())
	switch {
	case errors.Is(err, fsx.ErrLockHeld):
		return nil, fmt.Errorf("%w: another kvrflow works on %s (it holds %s)", steps.ErrInUse, layout.DB, layout.Lock())
	case errors.Is(err, fsx.ErrNotRegular):
		return nil, fmt.Errorf("%w: %w", steps.ErrBadPath, err)
	case err != nil:
		return nil, err
	}
	return &uploadWork{seam: seam, layout: layout, lock: lock}, nil
}

func (w *uploadWork) close() { _ = w.lock.Close() }

// create makes a new upload directory for url, durably, with its marker.
func (w *uploadWork) create(url string) (*uploadDir, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b[:])
	d := &uploadDir{path: filepath.Join(w.layout.Work, uploadPrefix+id)}
	if err := w.seam.MkdirDurable(d.path); err != nil {
		return nil, err
	}
	dirID, err := w.seam.DirID(d.path)
	if err != nil {
		return nil, err
	}
	d.mark = uploadMarker{ID: id, DB: w.layout.DB, URL: url, Dir: dirID, Created: time.Now().UTC()}
	data, err := json.Marshal(d.mark)
	if err != nil {
		return nil, err
	}
	if err := w.seam.WriteFileDurable(filepath.Join(d.path, uploadMarkerName), data); err != nil {
		return nil, err
	}
	return d, nil
}

// sweep goes through the upload directories a crashed or failed earlier
// backup left: the newest proven one for url whose checkpoint is complete
// is returned, to resume from; every other proven one is removed, and
// anything unproven is left in place and reported (res.Unproven), unless
// it is an empty directory (a crash before the marker was written).
func (w *uploadWork) sweep(url string, log *zerolog.Logger, res *RemoteBackupResult) (*uploadDir, error) {
	names, err := w.seam.List(w.layout.Work)
	if err != nil {
		return nil, err
	}
	var resume *uploadDir
	var garbage []*uploadDir
	for _, name := range names {
		if !strings.HasPrefix(name, uploadPrefix) {
			continue
		}
		path := filepath.Join(w.layout.Work, name)
		d, why, err := w.prove(name)
		if err != nil {
			return nil, err
		}
		if d == nil {
			// A crash between the directory and its marker leaves it
			// empty: removing an empty directory loses nothing.
			if removed, err := w.seam.RemoveEmptyDir(path); err != nil {
				return nil, err
			} else if removed {
				res.Removed = append(res.Removed, path)
				continue
			}
			log.Warn().Str("path", path).Str("reason", why).Msg("left in place: not provably a checkpoint kvrflow made")
			res.Unproven = append(res.Unproven, path)
			continue
		}
		if d.mark.URL == url && d.manifest != nil && (resume == nil || d.mark.Created.After(resume.mark.Created)) {
			if resume != nil {
				garbage = append(garbage, resume)
			}
			resume = d
			continue
		}
		garbage = append(garbage, d)
	}
	for _, d := range garbage {
		if err := w.seam.RemoveAllDurable(d.path); err != nil {
			return nil, err
		}
		log.Info().Str("path", d.path).Str("url", d.mark.URL).Msg("removed the checkpoint of an earlier backup's upload")
		res.Removed = append(res.Removed, d.path)
	}
	return resume, nil
}

// prove returns the upload directory at name in DB.kvrflow if its name,
// its marker and its identity agree, or nil and why not.
func (w *uploadWork) prove(name string) (*uploadDir, string, error) {
	path := filepath.Join(w.layout.Work, name)
	id := strings.TrimPrefix(name, uploadPrefix)
	if !validID(id) {
		return nil, "the name is not upload- and 16 hex digits", nil
	}
	mode, err := w.seam.LstatMode(path)
	if err != nil {
		return nil, "", err
	}
	if !mode.IsDir() {
		return nil, fmt.Sprintf("%s, not a directory", fsx.KindOf(mode)), nil
	}
	mpath := filepath.Join(path, uploadMarkerName)
	if mode, err := w.seam.LstatMode(mpath); err != nil || !mode.IsRegular() {
		return nil, "no regular " + uploadMarkerName + " marker", nil
	}
	f, err := w.seam.OpenRegular(mpath)
	if err != nil {
		return nil, "", err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMarkerSize))
	f.Close()
	if err != nil {
		return nil, "", err
	}
	d := &uploadDir{path: path}
	if err := json.Unmarshal(data, &d.mark); err != nil {
		return nil, "its marker does not parse: " + err.Error(), nil
	}
	switch {
	case d.mark.ID != id:
		return nil, fmt.Sprintf("its marker names upload %q", d.mark.ID), nil
	case d.mark.DB != w.layout.DB:
		return nil, fmt.Sprintf("its marker names database %s", d.mark.DB), nil
	}
	got, err := w.seam.DirID(path)
	if err != nil {
		return nil, "", err
	}
	if same, known := fsx.SameID(got, d.mark.Dir); known && !same {
		return nil, fmt.Sprintf("its identity (inode %d) is not the one its marker recorded (%d)", got.Ino, d.mark.Dir.Ino), nil
	} else if !known && (got == nil) != (d.mark.Dir == nil) {
		return nil, "its marker records no identity", nil
	}
	d.manifest = completeCheckpoint(w.seam, d.checkpoint())
	return d, "", nil
}

// completeCheckpoint returns the manifest of the checkpoint in dir if it
// has one that parses and every file it lists is there with its size;
// nil otherwise (an interrupted checkpoint, removed and made again).
func completeCheckpoint(seam *fsx.FS, dir string) *manifest.Manifest {
	f, err := seam.OpenRegular(filepath.Join(dir, manifest.Name))
	if err != nil {
		return nil
	}
	m, err := manifest.Parse(f)
	f.Close()
	if err != nil {
		return nil
	}
	for _, mf := range m.Files {
		fi, err := seam.Lstat(filepath.Join(dir, mf.Name))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != mf.Size {
			return nil
		}
	}
	return m
}

// validID reports whether s is 16 lower-case hex digits.
func validID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
