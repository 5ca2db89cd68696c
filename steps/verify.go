package steps

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
)

// VerifyDetails is journaled when Verify passes.
type VerifyDetails struct {
	Check string `json:"check"`
}

// verify opens the staged database read-only and checks it before
// anything is committed: at every level the engine must open it; at
// VerifyFull the engine's own deep check runs too (for RocksDB, see
// checkRocksDB).
func (e *Env) verify(ctx context.Context, _ *fsm.Run) (any, error) {
	staging := e.Layout.Staging(e.jid(), e.RunID)
	level := e.verifyLevel()
	if e.src.Engine == EngineRocksDB {
		check, err := e.checkRocksDB(ctx, staging)
		return VerifyDetails{Check: check}, err
	}
	if level != VerifyFull {
		if err := OpenPebble(e.FS.VFS(), staging, e.Log); err != nil {
			return nil, err
		}
		return VerifyDetails{Check: "pebble open read-only (--verify " + level + "; CheckLevels runs with --verify full)"}, nil
	}
	if err := CheckPebble(e.FS.VFS(), staging, e.Log); err != nil {
		var ce *CorruptTableError
		if errors.As(err, &ce) {
			// The staged table is the backup's, byte for byte: Write
			// compared its crc32c (and read it back), or hard-linked it.
			// So the backup was corrupt when it was made.
			src := ce.Path
			for _, f := range e.src.Files {
				if f.Name == filepath.Base(ce.Path) {
					src = f.Path
				}
			}
			return nil, fmt.Errorf("%w: %s: the backup's table is corrupt although it matches the backup's checksum (it was corrupt when the backup was made): %w",
				ErrBadSource, src, err)
		}
		return nil, err
	}
	return VerifyDetails{Check: "pebble open read-only + CheckLevels"}, nil
}

// CorruptTableError is returned by CheckPebble when a table fails its
// check: Path is the table, Details Pebble's finding (one line). It
// matches ErrVerify.
type CorruptTableError struct {
	Path    string
	Details string
}

func (e *CorruptTableError) Error() string {
	return fmt.Sprintf("%s: %s", e.Path, e.Details)
}

func (e *CorruptTableError) Unwrap() error { return ErrVerify }

// oneLine folds err's message onto one line: Pebble's errors may carry
// more (a "corruption detail carrier" or a stack).
func oneLine(err error) string {
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}

// Verification levels (--verify). Each includes what the one before it
// does. At every level the file list is checked (exactly the backup's
// files, each of its size), every copied byte's crc32c is computed as it
// is copied and compared with the backup's checksum, and the staged
// database must open in its engine before it is committed.
const (
	// VerifySize also checks each hard-linked table's footer (its last
	// bytes must be an sstable magic number) but does not read its data:
	// a link-mode restore then reads no table at all. In copy mode it is
	// VerifyChecksum, since the copy reads every byte anyway.
	VerifySize = "size"
	// VerifyChecksum (the default) also reads every hard-linked table and
	// compares its crc32c with the backup's, in Precheck, before anything
	// changes: every byte of the restored database is checked against the
	// checksums recorded when the backup was made.
	VerifyChecksum = "checksum"
	// VerifyFull also reads every copied file back from the device after
	// its fsync (the page cache dropped first) and compares its crc32c,
	// and runs the engine's deep check on the staged database: Pebble's
	// CheckLevels, which reads every table and checks block checksums and
	// key order across levels (about 1.1 s of CPU per GiB); for RocksDB,
	// sst_dump's verify of every block of every table (sst_dump must be on
	// PATH: CheckSSTDump), ldb checkconsistency running at every level.
	VerifyFull = "full"
	// VerifyOpen is the older name of VerifyChecksum (the staged database
	// is opened, not deep-checked), still accepted.
	VerifyOpen = "open"
)

// ParseVerify returns the verification level named by s ("" is the
// default, VerifyChecksum; VerifyOpen is read as VerifyChecksum).
func ParseVerify(s string) (string, bool) {
	switch s {
	case "", VerifyChecksum, VerifyOpen:
		return VerifyChecksum, true
	case VerifySize, VerifyFull:
		return s, true
	}
	return "", false
}

// verifyLevel returns the run's verification level. Precheck refused an
// unknown one, and the steps that ask (Precheck, Write, Verify) run only
// in a run that passed Precheck's start.
func (e *Env) verifyLevel() string {
	level, _ := ParseVerify(e.Verify)
	return level
}

// OpenPebble opens the Pebble database in dir read-only on fs and closes
// it.
func OpenPebble(fs vfs.FS, dir string, log zerolog.Logger) error {
	db, err := pebble.Open(dir, readOnlyOptions(fs, log))
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrVerify, dir, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("%w: close %s: %w", ErrVerify, dir, err)
	}
	return nil
}

// CheckPebble opens the Pebble database in dir read-only on fs and runs
// CheckLevels over it, which reads every table and checks its block
// checksums and key order.
func CheckPebble(fs vfs.FS, dir string, log zerolog.Logger) (err error) {
	db, err := pebble.Open(dir, readOnlyOptions(fs, log))
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrVerify, dir, err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%w: close %s: %w", ErrVerify, dir, cerr)
		}
	}()
	if err := db.CheckLevels(nil); err != nil {
		if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
			details := "corrupt"
			if info.Details != nil {
				details = oneLine(info.Details)
			}
			return &CorruptTableError{Path: info.Path, Details: details}
		}
		return fmt.Errorf("%w: %s: %s", ErrVerify, dir, oneLine(err))
	}
	return nil
}

// readOnlyOptions are the options Verify opens a staged database with:
// read-only, logging to log, and reporting corruption as a warning: left
// to its default, Pebble calls Logger.Fatalf on corruption, and the read
// that found it returns the error Verify reports anyway.
func readOnlyOptions(fs vfs.FS, log zerolog.Logger) *pebble.Options {
	return &pebble.Options{FS: fs, ReadOnly: true, Logger: PebbleLogger(log),
		EventListener: &pebble.EventListener{DataCorruption: func(info pebble.DataCorruptionInfo) {
			ev := log.Warn().Str("path", info.Path)
			if info.Details != nil {
				ev = ev.Str("details", oneLine(info.Details))
			}
			ev.Msg("pebble found corruption in the staged database")
		}}}
}

// PebbleLogger returns a Pebble logger that writes to log.
func PebbleLogger(log zerolog.Logger) pebble.Logger { return pebbleLogger{log} }

// pebbleLogger sends Pebble's log lines to zerolog at debug level (errors
// at warn), so they never mix with kvrflow's own output.
type pebbleLogger struct{ l zerolog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug().Msgf("pebble: "+format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Warn().Msgf("pebble: "+format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error().Msgf("pebble: "+format, args...)
	panic(fmt.Sprintf("pebble: "+format, args...))
}
