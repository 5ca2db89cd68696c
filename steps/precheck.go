package steps

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// SpaceMargin is added to the bytes a restore writes, and 5 % of them,
// when checking free space: room for directory blocks and the database's
// first writes after it opens. (The journal's own reserve is counted
// apart, when the journal is yet to be made.)
const SpaceMargin = 16 << 20

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
	// Target is what DB held (TargetAbsent, TargetEmpty, TargetPebble,
	// TargetRocksDB, or TargetOther with Force); Finish quarantines a
	// replaced TargetOther instead of removing it.
	Target string `json:"target"`
	// Journal is the journal's id, which names the run's directories.
	Journal string `json:"journal"`
	// KeepOld is the number of replaced databases to keep (--keep-old),
	// journaled so that a Finish resumed by recovery keeps as asked.
	KeepOld int `json:"keep_old,omitempty"`
	// Verify is the verification level; Checksummed counts the files
	// read and checksummed here (the rest are checked as Write copies
	// them), Footers the linked tables of which only the footer was read.
	Verify      string `json:"verify"`
	Checksummed int    `json:"checksummed"`
	Footers     int    `json:"footers,omitempty"`
	// Measured lists the files whose size and crc32c the source did not
	// record (a checkpoint): Write verifies its copies against these.
	Measured []SourceFile `json:"measured,omitempty"`
	// Prepare names the cluster restore of a cluster node's run (see
	// Env.Prepare): such a run waits in prepared for the decision.
	Prepare string `json:"prepare,omitempty"`
}

// precheck checks everything it can before anything changes: the paths,
// the backup (every file present at its size; the checksums of the files
// no copy of which will be read, see checkSourceFile), the free space,
// and that no process has the database open. It holds the database's
// LOCK until the run ends. It changes nothing on disk.
func (e *Env) precheck(ctx context.Context, _ *fsm.Run) (any, error) {
	if err := CheckOptions(e.Mode, e.Engine, e.Verify, e.KeepOld); err != nil {
		return nil, err
	}
	if err := CheckWork(e.FS, e.Layout); err != nil {
		return nil, err
	}
	if err := e.checkPaths(); err != nil {
		return nil, err
	}
	if err := CheckForeign(e.FS, e.Layout, e.jid()); err != nil {
		return nil, err
	}
	target, err := CheckTarget(e.FS, e.Layout, e.Force)
	if err != nil {
		return nil, err
	}
	src, err := OpenSource(e.FS, e.Source, e.Engine, e.BackupID)
	if err != nil {
		return nil, err
	}
	e.src = src
	if err := CheckSSTDump(src.Engine, e.Verify); err != nil {
		return nil, err
	}
	if e.mode, err = e.resolveMode(); err != nil {
		return nil, err
	}
	level := e.verifyLevel()
	// Check the files several at once; judge them in order, so the error
	// names the first bad file of the list.
	checks := make([]fileCheck, len(src.Files))
	errs := make([]error, len(src.Files))
	if err := eachFile(ctx, len(src.Files), func(ctx context.Context, i int, buf []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		checks[i], errs[i] = e.checkSourceFile(ctx, &src.Files[i], level, buf)
		if errs[i] != nil && !errors.Is(errs[i], ErrBadSource) {
			return errs[i] // an I/O error: stop
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	d := PrecheckDetails{Kind: src.Kind, BackupID: src.BackupID, Engine: src.Engine, Mode: e.mode, Verify: level,
		Files: len(src.Files), Bytes: src.Bytes(), Target: target, Journal: e.jid(), KeepOld: e.KeepOld, Prepare: e.Prepare}
	for i, f := range src.Files {
		switch checks[i] {
		case checkMeasured:
			d.Measured = append(d.Measured, f)
			d.Checksummed++
		case checkChecksummed:
			d.Checksummed++
		case checkFooter:
			d.Footers++
		}
	}
	d.Need = SpaceNeeded(src, e.mode)
	if avail, err := CheckSpace(e.FS, e.Layout.Parent, d.Need); err == nil || errors.Is(err, ErrNoSpace) {
		d.Avail = avail
		if err != nil {
			return nil, err
		}
	} else {
		e.Log.Warn().Err(err).Msg("free space unknown; not checked")
	}
	if err := e.lockDB(); err != nil {
		return nil, err
	}
	d.DBLock = e.dbLock != nil
	if target == TargetOther || target == TargetMixed {
		// --force moves the whole directory away: every database below it
		// stays locked until the run ends.
		below, err := LockDatabasesBelow(e.FS, e.Layout.DB)
		if err != nil {
			return nil, err
		}
		if e.dbLock == nil {
			e.dbLock = below
		} else {
			e.dbLock = multiCloser{e.dbLock, below}
		}
	}
	return d, nil
}

// fileCheck says what Precheck did with one file of the source.
type fileCheck int

const (
	checkSize        fileCheck = iota // its size: Write checks the crc32c of its copy
	checkChecksummed                  // read: size and crc32c compared with the backup's
	checkMeasured                     // read: the source records no checksum, this is it
	checkFooter                       // its size and its sstable footer (VerifySize, linked)
)

// checkSourceFile checks one file of the source and fills in what the
// source does not record. A file that Write copies is only stat'ed here:
// the copy computes its crc32c on the way and compares it, so its bytes
// are read once; but one whose checksum the source does not record (a
// checkpoint's) is measured here, before the copy, so a source that
// changes during the copy is caught. A file Write hard-links is read here
// and its crc32c compared or measured; at VerifySize only its size and
// footer are checked (Write journals it crc32c_unchecked; a checkpoint's
// then has no checksum at all). A file that does not match the backup is
// an ErrBadSource.
func (e *Env) checkSourceFile(ctx context.Context, f *SourceFile, level string, buf []byte) (fileCheck, error) {
	linked := e.mode == ModeLink && f.Linkable
	read := f.NoCRC
	if linked {
		read = level != VerifySize
	}
	// The file's identity, taken before it is read: Write checks that what
	// it hard-links is this file, unchanged.
	id, err := e.FS.Ident(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: listed file missing: %w", ErrBadSource, err)
	}
	if err != nil {
		return 0, err
	}
	f.ident = id
	if !read {
		if f.NoSize {
			f.Size, f.NoSize = id.Size, false
		}
		if id.Size != f.Size {
			return 0, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, f.Path, id.Size, f.Size)
		}
		if !linked {
			return checkSize, nil
		}
		tail, _, err := e.FS.ReadTail(f.Path, buf[:sstMagicLen])
		if err != nil {
			return 0, sourceErr(err)
		}
		if !isSSTableMagic(tail) {
			return 0, fmt.Errorf("%w: %s: its last bytes are not an sstable's magic number (corrupt or truncated)", ErrBadSource, f.Path)
		}
		return checkFooter, nil
	}
	if !f.NoSize && id.Size != f.Size {
		return 0, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, f.Path, id.Size, f.Size)
	}
	// Read no more than the size just seen, plus one byte to see growth.
	size, crc, err := e.FS.Checksum(ctx, f.Path, fsx.Want{ID: id.ID, Size: id.Size, Sized: true}, buf)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: listed file missing: %w", ErrBadSource, err)
	}
	if err != nil {
		return 0, sourceErr(err)
	}
	if f.NoCRC {
		if !f.NoSize && size != f.Size {
			return 0, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, f.Path, size, f.Size)
		}
		f.Size, f.CRC32C, f.NoSize, f.NoCRC, f.Measured = size, crc, false, false, true
		return checkMeasured, nil
	}
	if f.NoSize {
		f.Size, f.NoSize = size, false
	}
	switch {
	case size != f.Size:
		return 0, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, f.Path, size, f.Size)
	case crc != f.CRC32C:
		return 0, fmt.Errorf("%w: %s: crc32c %08x, manifest says %08x (corrupt)", ErrBadSource, f.Path, crc, f.CRC32C)
	}
	return checkChecksummed, nil
}

// sstMagics are the magic numbers that end an sstable, stored as a
// little-endian uint64 in its last sstMagicLen bytes: LevelDB's (also
// RocksDB's legacy block-based), RocksDB's block-based, plain (and legacy
// plain) and cuckoo tables (RocksDB's table/*_builder.cc), and Pebble's
// (sstable/table.go in Pebble).
var sstMagics = []uint64{
	0xdb4775248b80fb57, // LevelDB
	0x88e241b785f4cff7, // RocksDB block-based
	0x8242229663bf9564, // RocksDB plain table
	0x4f3418eb7a8f13b8, // RocksDB legacy plain table
	0x926789d0c5f17873, // RocksDB cuckoo table
	0xb3aa9ff0b3aa9ff0, // Pebble: "\xf0\x9f\xaa\xb3" twice
}

const sstMagicLen = 8

// isSSTableMagic reports whether tail is one of the sstable magic numbers.
func isSSTableMagic(tail []byte) bool {
	return len(tail) == sstMagicLen && slices.Contains(sstMagics, binary.LittleEndian.Uint64(tail))
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
	return srcAbs, CheckDBPath(fs, l)
}

// CheckDBPath refuses a database path that is a symbolic link (the swap
// would move the link, not the database) or exists and is not a
// directory. It changes nothing.
func CheckDBPath(fs *fsx.FS, l Layout) error {
	mode, err := fs.LstatMode(l.DB)
	switch {
	case isNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrBadPath, err)
	case mode&os.ModeSymlink != 0:
		return fmt.Errorf("%w: %s: the database path is a symbolic link; give the real directory", ErrBadPath, l.DB)
	case !mode.IsDir():
		return fmt.Errorf("%w: %s: database path is %s, not a directory", ErrBadPath, l.DB, fsx.KindOf(mode))
	}
	return nil
}

// resolveMode turns auto into copy or link, and refuses link across file
// systems.
func (e *Env) resolveMode() (Mode, error) {
	return ResolveMode(e.FS, e.Mode, e.Source, e.Layout.Parent)
}

// ResolveMode turns mode auto (or "") into copy or link for a restore of
// source into a database whose parent is parent, and refuses link across
// file systems. It changes nothing.
func ResolveMode(fsys *fsx.FS, mode Mode, source, parent string) (Mode, error) {
	if mode == "" {
		mode = ModeAuto
	}
	if mode == ModeCopy {
		return mode, nil
	}
	same := true
	a, errA := fsys.FileID(source)
	b, errB := fsys.FileID(parent)
	if errA == nil && errB == nil {
		same = a.Dev == b.Dev
	}
	switch {
	case same:
		return ModeLink, nil
	case mode == ModeLink:
		return "", fmt.Errorf("%w: --mode link: source %s is on another file system than %s", ErrBadPath, source, parent)
	default:
		return ModeCopy, nil
	}
}

// SpaceNeeded is the free space a restore of src in mode needs on the
// database's file system: the bytes it writes (linked tables take none),
// 5 % more and SpaceMargin.
func SpaceNeeded(src *Source, mode Mode) int64 {
	var need int64
	for _, f := range src.Files {
		if !(mode == ModeLink && f.Linkable) {
			need += f.Size
		}
	}
	return need + need/20 + SpaceMargin
}

// CheckSpace returns the space free on the file system holding dir, and
// ErrNoSpace (in human units, naming dir) if it is less than need.
func CheckSpace(fsys *fsx.FS, dir string, need int64) (int64, error) {
	u, err := fsys.DiskUsage(dir)
	if err != nil {
		return 0, err
	}
	avail := int64(u.AvailBytes)
	if avail < need {
		return avail, fmt.Errorf("%w: %s: %s free, the restore needs %s (the bytes it writes, 5 %%, and %s of margin)",
			ErrNoSpace, dir, HumanBytes(avail), HumanBytes(need), HumanBytes(SpaceMargin))
	}
	return avail, nil
}

// HumanBytes formats n bytes in binary units: 1.5 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// lockDB takes the database's LOCK file if there is one: Pebble (and
// RocksDB) hold it while the database is open. A database without a LOCK
// file is not open; kvrflow does not create one in it.
func (e *Env) lockDB() error {
	if e.dbLock != nil {
		return nil
	}
	l, err := e.lockDir(e.Layout.DB)
	e.dbLock = l
	return err
}

// lockDir takes dir/LOCK if it exists, failing with ErrInUse if another
// process holds it; it returns nil and no error where there is none.
func (e *Env) lockDir(dir string) (io.Closer, error) {
	lock := filepath.Join(dir, "LOCK")
	if _, err := e.FS.LstatMode(lock); err != nil {
		if isNotExist(err) {
			return nil, nil // no LOCK: the database is not open; kvrflow makes none
		}
		return nil, err
	}
	l, err := e.FS.Lock(lock)
	if errors.Is(err, fsx.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", ErrBadPath, err)
	}
	if errors.Is(err, fsx.ErrLockHeld) {
		return nil, fmt.Errorf("%w: database %s is open (its LOCK is held): %w", ErrInUse, dir, err)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// LockForRecovery takes, before recovery's Rollback or Finish acts, the
// LOCK of every directory of the run that may hold a database a server
// could have open: DB, and the run's staging and old directories (after an
// exchange the old database is at staging). It fails with ErrInUse,
// having changed nothing, if another process holds one. Close releases
// them.
func (e *Env) LockForRecovery() error {
	if e.dbLock != nil {
		return nil
	}
	n, err := e.notes(e.RunID)
	if err != nil {
		return err
	}
	dirs := []string{e.Layout.DB, e.stagingPath(n)}
	if n.plan != nil && n.plan.Old != "" {
		dirs = append(dirs, n.plan.Old)
	}
	var held multiCloser
	for _, d := range dirs {
		l, err := e.lockDir(d)
		if err != nil {
			held.Close()
			return err
		}
		if l != nil {
			held = append(held, l)
			if e.held == nil {
				e.held = map[string]bool{}
			}
			lock := filepath.Join(d, "LOCK")
			e.held[lock] = true
			// By identity too: a resumed Commit may find this LOCK under
			// another name once it has undone its plan.
			if id, err := e.FS.FileID(lock); err == nil {
				e.held[fmt.Sprintf("id:%d:%d", id.Dev, id.Ino)] = true
			}
		}
	}
	e.dbLock = held
	return nil
}

// multiCloser closes each of its closers.
type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
