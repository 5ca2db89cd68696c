package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/steps"
)

// BackupResult describes a backup made by Backup.
type BackupResult struct {
	Dir   string `json:"dir"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
	// Mode is how the tables got into the backup: BackupLinked or
	// BackupCopied. Why says what chose it.
	Mode BackupMode `json:"mode"`
	Why  string     `json:"mode_reason"`
}

// BackupMode says whether a backup's tables are hard links to the
// database's files or copies of them.
type BackupMode string

const (
	// BackupLinked: the tables (and blob files) are hard links to the
	// database's files, shared with it until it compacts them away.
	BackupLinked BackupMode = "linked"
	// BackupCopied: every file was copied and fsynced; the backup shares
	// nothing with the database.
	BackupCopied BackupMode = "copied"
)

// BackupOption changes what Backup does.
type BackupOption func(*backupOptions)

type backupOptions struct{ copy bool }

// WithCopy makes Backup copy every file (fsynced) instead of hard-linking
// the tables: an independent backup that shares nothing with the
// database. Backup copies without it when out is on another file system.
func WithCopy() BackupOption { return func(o *backupOptions) { o.copy = true } }

// Backup makes a backup of the Pebble database db in out, which must not
// exist: a Pebble checkpoint with its WAL flushed, checked with
// CheckLevels (a database with a corrupt block gets no backup), plus the
// manifest KVRFLOW-BACKUP listing every file's size and crc32c, written
// durably last. A directory without that manifest is not a backup kvrflow will
// restore, so an interrupted Backup leaves nothing restorable by mistake.
// fs nil means the real disk. out's parent directory must exist
// (steps.ErrBadPath otherwise): Backup does not make directories above
// the backup.
//
// The database must not be open in another process (steps.ErrInUse: Pebble
// locks it). On the same file system the tables are hard links to the
// database's files (Pebble's checkpoint), shared until the database
// compacts them away; with WithCopy, or when out is on another file
// system than db, every file is copied and fsynced with fsx.CopyFile
// instead (Pebble would fall back to its own copy on any failed link; the
// choice is made here and reported in BackupResult.Mode).
func Backup(ctx context.Context, db, out string, fs vfs.FS, opts ...BackupOption) (*BackupResult, error) {
	if fs == nil {
		fs = vfs.Default
	}
	var o backupOptions
	for _, opt := range opts {
		opt(&o)
	}
	seam := fsx.New(fs, nil)
	if err := checkBackupTarget(seam, db, out); err != nil {
		return nil, err
	}
	if err := checkBackupParent(seam, out); err != nil {
		return nil, err
	}
	if ok, err := seam.Exists(out); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%w: %s: already exists", steps.ErrBadPath, out)
	}
	if err := checkBackupDB(seam, db); err != nil {
		return nil, err
	}
	m, mode, why, err := checkpointDB(ctx, seam, db, out, o.copy)
	if err != nil {
		return nil, err
	}
	dir := out
	if abs, err := filepath.Abs(out); err == nil {
		dir = abs // the result names the backup wherever it is read
	}
	return &BackupResult{Dir: dir, Files: len(m.Files), Bytes: m.Bytes(), Mode: mode, Why: why}, nil
}

// checkBackupDB refuses a db that is not a Pebble database: a kvrflow
// backup, a RocksDB database, a missing or foreign directory
// (steps.ErrBadPath).
func checkBackupDB(seam *fsx.FS, db string) error {
	if ok, err := seam.Exists(filepath.Join(db, manifest.Name)); err != nil {
		return err
	} else if ok {
		// Opening a backup as a database would write into it and break
		// its manifest.
		return fmt.Errorf("%w: %s is a kvrflow backup, not a database: restore it first", steps.ErrBadPath, db)
	}
	// Only a Pebble database is opened: Pebble would make a LOCK (and
	// more) in any other directory, and refuses RocksDB's format.
	switch kind, _, err := steps.ClassifyTarget(seam, db); {
	case err != nil:
		return fmt.Errorf("%w: %w", steps.ErrBadPath, err)
	case kind == steps.TargetAbsent:
		return fmt.Errorf("%w: database %s does not exist", steps.ErrBadPath, db)
	case kind == steps.TargetRocksDB:
		return fmt.Errorf("%w: %s is a RocksDB (Kvrocks) database: kvrflow backup makes Pebble backups; make a RocksDB checkpoint or BackupEngine backup (ldb checkpoint, Kvrocks BGSAVE/backup) and restore from that", steps.ErrBadPath, db)
	case kind != steps.TargetPebble && kind != steps.TargetMixed:
		return fmt.Errorf("%w: %s holds no Pebble database (%s)", steps.ErrBadPath, db, kind)
	}
	return nil
}

// checkpointDB makes the checkpoint of db in out (which must not exist:
// Pebble creates it), checks it with CheckLevels and writes its manifest
// durably last; it returns the manifest and how the tables got there. A
// checkpoint that fails CheckLevels is removed (this call made it); on
// any other error out may hold a partial checkpoint without a manifest,
// which the caller owns.
func checkpointDB(ctx context.Context, seam *fsx.FS, db, out string, copy bool) (*manifest.Manifest, BackupMode, string, error) {
	cfs, err := newCheckpointFS(ctx, seam, db, out, copy)
	if err != nil {
		return nil, "", "", err
	}
	d, err := pebble.Open(db, &pebble.Options{FS: cfs, ErrorIfNotExists: true, Logger: steps.PebbleLogger(zerolog.Nop())})
	if err != nil {
		return nil, "", "", fmt.Errorf("open database %s: %w", db, classifyOpen(err))
	}
	err = d.Checkpoint(out, pebble.WithFlushedWAL())
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("checkpoint %s to %s: %w", db, out, err)
	}
	mode, why := cfs.mode()
	// Check every block before the manifest records its checksums, so that
	// a restore checking those checksums restores valid tables, not a
	// corruption the live database already had. A checkpoint that fails is
	// removed: this call made it, and it could never be restored.
	if err := ctx.Err(); err != nil {
		return nil, "", "", err
	}
	if err := checkCheckpoint(seam, out); err != nil {
		what := "could not be checked"
		var ce *steps.CorruptTableError
		if errors.As(err, &ce) {
			what = "is corrupt"
		}
		if rerr := seam.RemoveAllDurable(out); rerr != nil {
			return nil, "", "", fmt.Errorf("the checkpoint %s of database %s %s (%w), and removing it failed: %w", out, db, what, err, rerr)
		}
		return nil, "", "", fmt.Errorf("database %s %s: its checkpoint failed CheckLevels and was removed, no backup made: %w", db, what, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", "", err
	}
	names, err := seam.List(out)
	if err != nil {
		return nil, "", "", err
	}
	slices.Sort(names)
	m := &manifest.Manifest{Engine: "pebble", Created: time.Now().UTC()}
	buf := make([]byte, fsx.BufferSize)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, "", "", err
		}
		size, crc, err := seam.Checksum(ctx, filepath.Join(out, n), fsx.Want{}, buf)
		if err != nil {
			return nil, "", "", err
		}
		m.Files = append(m.Files, manifest.File{Name: n, Size: size, CRC32C: crc})
	}
	if err := seam.WriteFileDurable(filepath.Join(out, manifest.Name), m.Encode()); err != nil {
		return nil, "", "", err
	}
	return m, mode, why, nil
}

// checkBackupParent refuses an out whose parent directory is missing or
// not a directory: Pebble's checkpoint would make every missing directory
// above it, and a typo would go unnoticed.
func checkBackupParent(seam *fsx.FS, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("%w: %w", steps.ErrBadPath, err)
	}
	parent := filepath.Dir(abs)
	fi, err := seam.Stat(parent)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: --to %s: its parent directory %s does not exist", steps.ErrBadPath, out, parent)
	case err != nil:
		return fmt.Errorf("%w: --to %s: %w", steps.ErrBadPath, out, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: --to %s: its parent %s is not a directory", steps.ErrBadPath, out, parent)
	}
	return nil
}

// checkCheckpoint runs Pebble's CheckLevels over the checkpoint in dir
// (every table's blocks and checksums, key order across levels). Opening
// it creates a LOCK file, which is removed: a backup holds only the
// database's files.
func checkCheckpoint(seam *fsx.FS, dir string) error {
	lock := filepath.Join(dir, "LOCK")
	had, err := seam.Exists(lock)
	if err != nil {
		return err
	}
	checkErr := steps.CheckPebble(seam.VFS(), dir, zerolog.Nop())
	if had || checkErr != nil {
		return checkErr // on error the caller removes dir
	}
	if err := seam.VFS().Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", lock, err)
	}
	return seam.SyncDir(dir)
}

// classifyOpen marks a Pebble open error caused by a held lock as
// steps.ErrInUse, and a missing database as steps.ErrBadPath.
func classifyOpen(err error) error {
	switch {
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: %w", steps.ErrInUse, err)
	case errors.Is(err, pebble.ErrDBDoesNotExist):
		return fmt.Errorf("%w: %w", steps.ErrBadPath, err)
	}
	return err
}

// checkBackupTarget refuses an output directory inside the database (a
// restore of that database would remove it with the old one) or inside a
// kvrflow directory (NAME.kvrflow: Clean quarantines what it does not
// know there).
func checkBackupTarget(seam *fsx.FS, db, out string) error {
	dbAbs, err1 := filepath.Abs(db)
	outAbs, err2 := filepath.Abs(out)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%w: %w", steps.ErrBadPath, err)
	}
	dbRes := seam.Resolve(dbAbs)
	outRes := filepath.Join(seam.Resolve(filepath.Dir(outAbs)), filepath.Base(outAbs))
	if rel, err := filepath.Rel(dbRes, outRes); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w: --to %s is inside the database %s: a restore of it would remove the backup with the old database", steps.ErrBadPath, out, db)
	}
	for p := outRes; p != filepath.Dir(p); p = filepath.Dir(p) {
		if strings.HasSuffix(filepath.Base(p), ".kvrflow") {
			return fmt.Errorf("%w: --to %s is inside %s, a kvrflow directory: keep backups elsewhere", steps.ErrBadPath, out, p)
		}
	}
	return nil
}
