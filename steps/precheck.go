package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// SpaceMargin is added to the bytes a restore writes when checking free
// space: room for the journal, directory blocks and the database's first
// writes after it opens.
const SpaceMargin = 64 << 20

// PrecheckDetails is journaled when Precheck passes.
type PrecheckDetails struct {
	Kind     string `json:"kind"`
	BackupID uint64 `json:"backup_id,omitempty"`
	Engine   string `json:"engine"`
	Mode     Mode   `json:"mode"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Need     int64  `json:"need_bytes"`
	Avail    int64  `json:"avail_bytes,omitempty"`
	DBLock   bool   `json:"db_lock"`
	// Measured lists the files whose size and crc32c the source did not
	// record (a checkpoint): Write verifies its copies against these.
	Measured []SourceFile `json:"measured,omitempty"`
}

// precheck checks everything it can before anything changes: the paths,
// the backup (every file's size and crc32c), the free space, and that no
// process has the database open. It holds the database's LOCK until the
// run ends. It changes nothing on disk.
func (e *Env) precheck(ctx context.Context, _ *fsm.Run) (any, error) {
	if err := e.checkPaths(); err != nil {
		return nil, err
	}
	src, err := OpenSource(e.FS, e.Source, e.Engine, e.BackupID)
	if err != nil {
		return nil, err
	}
	// Checksum every file, several at once; judge them in order, so the
	// error names the first bad file of the list.
	type sum struct {
		size int64
		crc  uint32
		err  error
	}
	sums := make([]sum, len(src.Files))
	if err := eachFile(ctx, len(src.Files), func(ctx context.Context, i int, buf []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := &sums[i]
		s.size, s.crc, s.err = e.FS.Checksum(src.Files[i].Path, buf)
		if s.err != nil && !errors.Is(s.err, os.ErrNotExist) {
			return s.err // an I/O error: stop
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var measured []SourceFile
	for i := range src.Files {
		f, s := &src.Files[i], sums[i]
		switch {
		case s.err != nil:
			return nil, fmt.Errorf("%w: listed file missing: %w", ErrBadSource, s.err)
		case f.NoSize && f.NoCRC:
			f.Size, f.CRC32C, f.NoSize, f.NoCRC = s.size, s.crc, false, false
			measured = append(measured, *f)
			continue
		case f.NoSize:
			f.Size, f.NoSize = s.size, false
		}
		switch {
		case s.size != f.Size:
			return nil, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, f.Path, s.size, f.Size)
		case s.crc != f.CRC32C:
			return nil, fmt.Errorf("%w: %s: crc32c %08x, manifest says %08x (corrupt)", ErrBadSource, f.Path, s.crc, f.CRC32C)
		}
	}
	e.src = src
	if e.mode, err = e.resolveMode(); err != nil {
		return nil, err
	}
	d := PrecheckDetails{Kind: src.Kind, BackupID: src.BackupID, Engine: src.Engine, Mode: e.mode,
		Files: len(src.Files), Bytes: src.Bytes(), Measured: measured}
	for _, f := range src.Files {
		if !(e.mode == ModeLink && f.Linkable) {
			d.Need += f.Size
		}
	}
	d.Need += d.Need/20 + SpaceMargin
	if u, err := e.FS.DiskUsage(e.Layout.Parent); err == nil {
		d.Avail = int64(u.AvailBytes)
		if d.Avail < d.Need {
			return nil, fmt.Errorf("%w: %s: %d bytes free, the restore needs %d", ErrNoSpace, e.Layout.Parent, d.Avail, d.Need)
		}
	} else {
		e.Log.Warn().Err(err).Msg("free space unknown; not checked")
	}
	if err := e.lockDB(); err != nil {
		return nil, err
	}
	d.DBLock = e.dbLock != nil
	return d, nil
}

// checkPaths refuses overlapping or unusable paths.
func (e *Env) checkPaths() error {
	src, err := CheckPaths(e.FS, e.Layout, e.Source)
	e.Source = src
	return err
}

// CheckPaths refuses a source and database that overlap (or overlap
// kvrflow's directory), a database parent that is missing, not a
// directory or not writable, and a database path that is a symbolic link
// or not a directory. It returns source made absolute. It changes nothing.
func CheckPaths(fs *fsx.FS, l Layout, source string) (string, error) {
	if source == "" {
		return "", fmt.Errorf("%w: no source given", ErrBadPath)
	}
	srcAbs, err := filepath.Abs(source)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrBadPath, source, err)
	}
	src, db, work := fs.Resolve(srcAbs), fs.Resolve(l.DB), fs.Resolve(l.Work)
	switch {
	case within(src, db) || within(db, src):
		return srcAbs, fmt.Errorf("%w: source %s and database %s overlap", ErrBadPath, srcAbs, l.DB)
	case within(src, work) || within(work, src):
		return srcAbs, fmt.Errorf("%w: source %s and kvrflow's directory %s overlap", ErrBadPath, srcAbs, l.Work)
	}
	fi, err := fs.Stat(l.Parent)
	if err != nil {
		return srcAbs, fmt.Errorf("%w: database parent: %w", ErrBadPath, err)
	}
	if !fi.IsDir() {
		return srcAbs, fmt.Errorf("%w: %s: database parent is not a directory", ErrBadPath, l.Parent)
	}
	if err := fs.CheckWritable(l.Parent); err != nil {
		return srcAbs, fmt.Errorf("%w: database parent: %w", ErrBadPath, err)
	}
	if link, err := fs.IsSymlink(l.DB); err == nil && link {
		return srcAbs, fmt.Errorf("%w: %s: the database path is a symbolic link; give the real directory", ErrBadPath, l.DB)
	}
	if ok, err := fs.Exists(l.DB); err != nil {
		return srcAbs, fmt.Errorf("%w: %w", ErrBadPath, err)
	} else if ok {
		fi, err := fs.Stat(l.DB)
		if err != nil {
			return srcAbs, fmt.Errorf("%w: %w", ErrBadPath, err)
		}
		if !fi.IsDir() {
			return srcAbs, fmt.Errorf("%w: %s: database path is not a directory", ErrBadPath, l.DB)
		}
	}
	return srcAbs, nil
}

// resolveMode turns auto into copy or link, and refuses link across file
// systems.
func (e *Env) resolveMode() (Mode, error) {
	mode := e.Mode
	if mode == "" {
		mode = ModeAuto
	}
	if mode == ModeCopy {
		return mode, nil
	}
	same := true
	a, errA := e.FS.FileID(e.Source)
	b, errB := e.FS.FileID(e.Layout.Parent)
	if errA == nil && errB == nil {
		same = a.Dev == b.Dev
	}
	switch {
	case same:
		return ModeLink, nil
	case mode == ModeLink:
		return "", fmt.Errorf("%w: --mode link: source %s is on another file system than %s", ErrBadPath, e.Source, e.Layout.Parent)
	default:
		return ModeCopy, nil
	}
}

// lockDB takes the database's LOCK file if there is one: Pebble (and
// RocksDB) hold it while the database is open. A database without a LOCK
// file is not open; kvrflow does not create one in it.
func (e *Env) lockDB() error {
	if e.dbLock != nil {
		return nil
	}
	lock := filepath.Join(e.Layout.DB, "LOCK")
	ok, err := e.FS.Exists(lock)
	if err != nil || !ok {
		return err
	}
	l, err := e.FS.Lock(lock)
	if errors.Is(err, fsx.ErrLockHeld) {
		return fmt.Errorf("%w: database %s is open (its LOCK is held): %w", ErrInUse, e.Layout.DB, err)
	}
	if err != nil {
		return err
	}
	e.dbLock = l
	return nil
}
