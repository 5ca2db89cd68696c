package steps

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// What Precheck found at DB (journaled as PrecheckDetails.Target).
const (
	TargetAbsent  = "absent"  // DB does not exist: the restore creates it
	TargetMixed   = "mixed"   // a database and entries that are not its own: replaced only with Force, then quarantined
	TargetEmpty   = "empty"   // an empty directory
	TargetPebble  = "pebble"  // a Pebble database
	TargetRocksDB = "rocksdb" // a RocksDB (Kvrocks) database
	TargetOther   = "other"   // anything else: replaced only with Force, and then quarantined, not removed
)

// ClassifyTarget says what the directory db holds: TargetAbsent,
// TargetEmpty, a database of a known engine, or TargetOther, with the
// names of its first entries (for messages). It reads only the directory's
// listing.
func ClassifyTarget(fsys *fsx.FS, db string) (kind string, entries []string, err error) {
	names, err := fsys.List(db)
	if errors.Is(err, fs.ErrNotExist) {
		return TargetAbsent, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if len(names) == 0 {
		return TargetEmpty, nil, nil
	}
	slices.Sort(names)
	var current, manifest, identity, marker bool
	var foreign []string
	for _, n := range names {
		if !dbEntry.MatchString(n) {
			foreign = append(foreign, n)
		}
		switch {
		case n == "CURRENT":
			current = true
		case n == "IDENTITY":
			identity = true
		case strings.HasPrefix(n, "MANIFEST-"):
			manifest = true
		case strings.HasPrefix(n, "marker.manifest.") || strings.HasPrefix(n, "marker.format-version."):
			marker = true
		}
	}
	kind = TargetOther
	switch {
	case marker:
		kind = TargetPebble
	case current && (manifest || identity):
		kind = TargetRocksDB
	}
	if kind != TargetOther && len(foreign) > 0 {
		return TargetMixed, foreign, nil
	}
	return kind, names, nil
}

// dbEntry matches the names a Pebble or RocksDB database directory holds:
// tables, logs, blobs, manifests, options, markers, LOCK, CURRENT,
// IDENTITY, RocksDB's LOG files and WAL archive, and temporary files the
// engines make. Anything else in a database directory is not the
// database's, and a restore would remove it with the old database.
var dbEntry = regexp.MustCompile(`^(` +
	`\d+\.(sst|log|blob|ldb|dbtmp)|MANIFEST-\d+|OPTIONS-\d+(\.dbtmp)?|CURRENT|LOCK|IDENTITY|` +
	`marker\..+|LOG|LOG\.old\.\d+|archive|temporary\.\d+\.dbtmp|\d+\.dbtmp|STORAGE_MIN_VERSION)$`)

// CheckTarget applies the target rule to DB: it must be absent, empty, or
// a database of a known engine (Pebble, RocksDB/Kvrocks), unless force is
// set; it must not be a mount point (a restore replaces DB by renaming it,
// which a mount point cannot be). It returns what DB holds. It changes
// nothing.
func CheckTarget(fsys *fsx.FS, l Layout, force bool) (string, error) {
	kind, names, err := ClassifyTarget(fsys, l.DB)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPath, err)
	}
	if kind == TargetAbsent {
		return kind, notInsideWork(fsys, l)
	}
	if mnt, err := fsys.IsMountPoint(l.DB); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPath, err)
	} else if mnt {
		return "", fmt.Errorf("%w: %s is a mount point: a restore replaces the database directory by renaming it; restore into a directory inside the mounted file system", ErrBadPath, l.DB)
	}
	if err := notInsideWork(fsys, l); err != nil {
		return "", err
	}
	if m, err := fsys.MountsBelow(l.DB); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPath, err)
	} else if len(m) > 0 {
		return "", fmt.Errorf("%w: a file system is mounted at %s, inside %s: a restore replaces and removes the whole directory; unmount it first", ErrBadPath, m[0], l.DB)
	}
	switch {
	case kind == TargetOther && !force:
		return "", fmt.Errorf("%w: %s is not empty and holds no database kvrflow knows (pebble or rocksdb): %s%s; give the database directory itself, or --force to replace it (its contents are then moved to %s, not deleted)",
			ErrBadPath, l.DB, sample(fsys, l.DB, names), databasesBelow(fsys, l.DB, names), l.Quarantine)
	case kind == TargetMixed && !force:
		return "", fmt.Errorf("%w: %s holds a database and also entries that are not the database's: %s; a restore replaces the whole directory: move them out first, or --force (the directory replaced is then moved to %s, not deleted)",
			ErrBadPath, l.DB, sample(fsys, l.DB, names), l.Quarantine)
	case force && (kind == TargetOther || kind == TargetMixed):
		// Everything below is to be moved aside: no database in it may be
		// open (a server working in a subdirectory).
		if err := noOpenDatabaseBelow(fsys, l.DB); err != nil {
			return "", err
		}
	}
	return kind, nil
}

// databasesBelow names the direct subdirectories of dir that hold a
// database, as a hint that the operator meant one of them.
func databasesBelow(fsys *fsx.FS, dir string, names []string) string {
	var dbs []string
	for _, n := range names {
		if m, err := fsys.LstatMode(filepath.Join(dir, n)); err != nil || !m.IsDir() {
			continue
		}
		if k, _, err := ClassifyTarget(fsys, filepath.Join(dir, n)); err == nil && (k == TargetPebble || k == TargetRocksDB) {
			dbs = append(dbs, filepath.Join(dir, n))
		}
	}
	if len(dbs) == 0 {
		return ""
	}
	return " (it holds a database at " + strings.Join(dbs, ", ") + ": did you mean --db " + dbs[0] + "?)"
}

// noOpenDatabaseBelow fails with ErrInUse if a LOCK file below dir (not
// following symbolic links) is locked by another process: a database in
// use there would be moved away under its server.
func noOpenDatabaseBelow(fsys *fsx.FS, dir string) error {
	var held error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || held != nil {
			return nil // unreadable parts are left as they are
		}
		if d.Name() != "LOCK" || !d.Type().IsRegular() {
			return nil
		}
		l, err := fsys.Lock(p)
		if errors.Is(err, fsx.ErrLockHeld) {
			held = fmt.Errorf("%w: %s is held: a database below %s is open; --force would move it away under its server", ErrInUse, p, dir)
			return filepath.SkipAll
		}
		if err == nil {
			l.Close()
		}
		return nil
	})
	if held != nil {
		return held
	}
	return err
}

// LockDatabasesBelow takes the LOCK of every database below dir (not
// following symbolic links; dir's own LOCK is the caller's to take) and
// returns them held, for a run that will
// move dir away (--force): a server cannot open one of them meanwhile. A
// LOCK another process holds is ErrInUse, with nothing held.
func LockDatabasesBelow(fsys *fsx.FS, dir string) (io.Closer, error) {
	var held multiCloser
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "LOCK" || !d.Type().IsRegular() || p == filepath.Join(dir, "LOCK") {
			return nil // unreadable parts are left as they are; dir's own LOCK is the caller's
		}
		l, err := fsys.Lock(p)
		if errors.Is(err, fsx.ErrLockHeld) {
			return fmt.Errorf("%w: %s is held: a database below %s is open; --force would move it away under its server", ErrInUse, p, dir)
		}
		if err != nil {
			return err
		}
		held = append(held, l)
		return nil
	})
	if err != nil {
		held.Close()
		return nil, err
	}
	return held, nil
}

// notInsideWork refuses a DB that is, or is inside, a kvrflow directory
// (NAME.kvrflow): those hold kvrflow's own work (staging, kept and
// quarantined databases), never a database to restore into.
func notInsideWork(fsys *fsx.FS, l Layout) error {
	for p := fsys.Resolve(l.Parent); p != filepath.Dir(p); p = filepath.Dir(p) {
		if strings.HasSuffix(filepath.Base(p), ".kvrflow") || looksLikeWork(fsys, p) {
			return fmt.Errorf("%w: %s is inside %s, a kvrflow directory (staging, kept and quarantined databases): give the database's own path", ErrBadPath, l.DB, p)
		}
	}
	if strings.HasSuffix(l.DB, ".kvrflow") {
		return fmt.Errorf("%w: %s is named like a kvrflow directory: give the database's own path", ErrBadPath, l.DB)
	}
	return nil
}

// sample names the first few entries of dir, directories with a slash.
func sample(fsys *fsx.FS, dir string, names []string) string {
	const most = 5
	var b strings.Builder
	for i, n := range names {
		if i == most {
			fmt.Fprintf(&b, " and %d more", len(names)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
		if m, err := fsys.LstatMode(filepath.Join(dir, n)); err == nil && m.IsDir() {
			b.WriteString("/")
		}
	}
	return b.String()
}

// CheckWork refuses a kvrflow directory (DB.kvrflow) that kvrflow cannot
// trust to be its own: a symbolic link, something other than a directory,
// or a directory on another file system than DB (a mount point: the
// commit renames between the two); and, inside it, a quarantine that is
// not a real directory or a lock that is not a regular file. It changes
// nothing. A Work that does not exist is fine: kvrflow creates it.
func CheckWork(fsys *fsx.FS, l Layout) error {
	mode, err := fsys.LstatMode(l.Work)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrBadPath, err)
	case mode&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link: kvrflow's directory must be a real directory beside the database, never followed elsewhere", ErrBadPath, l.Work)
	case !mode.IsDir():
		return fmt.Errorf("%w: %s is %s, not a directory: kvrflow keeps its journal and staging there; move it away", ErrBadPath, l.Work, fsx.KindOf(mode))
	}
	if mnt, err := fsys.IsMountPoint(l.Work); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPath, err)
	} else if mnt {
		return fmt.Errorf("%w: %s is a mount point: staging must be on the database's file system to be renamed into place", ErrBadPath, l.Work)
	}
	for _, c := range []struct {
		name string
		ok   func(fs.FileMode) bool
		want string
	}{
		{QuarantineName, fs.FileMode.IsDir, "a directory"},
		{LockName, fs.FileMode.IsRegular, "a regular file"},
		{JournalName, fs.FileMode.IsRegular, "a regular file"},
	} {
		p := filepath.Join(l.Work, c.name)
		mode, err := fsys.LstatMode(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadPath, err)
		}
		if !c.ok(mode) {
			return fmt.Errorf("%w: %s is %s; kvrflow needs %s there and follows no links", ErrBadPath, p, fsx.KindOf(mode), c.want)
		}
	}
	return nil
}

// CheckJournalPath refuses a journal path inside the database (a restore
// replaces DB, and the journal with it) or in a subdirectory of Work
// (staging and quarantine are moved and removed), and one that exists but
// is not a regular file. It changes nothing.
func CheckJournalPath(fsys *fsx.FS, l Layout, path string) error {
	if path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%w: journal %s: %w", ErrBadPath, path, err)
	}
	// Resolve the directory (the file may not exist yet) and compare with
	// DB and Work resolved the same way.
	res := filepath.Join(fsys.Resolve(filepath.Dir(abs)), filepath.Base(abs))
	db, work := fsys.Resolve(l.DB), fsys.Resolve(l.Work)
	switch {
	case within(res, db) || within(res, l.DB):
		return fmt.Errorf("%w: journal %s is inside the database %s, which a restore replaces; keep the journal outside it (default %s)", ErrBadPath, path, l.DB, l.Journal())
	case (within(res, work) || within(res, l.Work)) && filepath.Dir(res) != work && filepath.Dir(res) != l.Work:
		return fmt.Errorf("%w: journal %s is inside a subdirectory of %s, which kvrflow moves and removes; put it in %s itself or outside", ErrBadPath, path, l.Work, l.Work)
	}
	// The journal is on the real disk whatever the seam's file system
	// (bbolt opens it with os.OpenFile).
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		inWork := filepath.Dir(res) == work || filepath.Dir(res) == l.Work // kvrflow makes Work
		if pfi, err := os.Stat(filepath.Dir(abs)); !inWork && (err != nil || !pfi.IsDir()) {
			return fmt.Errorf("%w: journal %s: its directory %s does not exist", ErrBadPath, path, filepath.Dir(abs))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: journal: %w", ErrBadPath, err)
	}
	if mode := fi.Mode(); !mode.IsRegular() && mode&fs.ModeSymlink == 0 {
		return fmt.Errorf("%w: journal %s is %s, not a file", ErrBadPath, path, fsx.KindOf(mode))
	}
	return nil
}

// CheckForeign refuses to run beside another journal's run directories
// in Work: a staging-JID-N or old-JID-N of a journal other than jid means
// that journal has a run in flight on this database (an ended run removes
// its directories), which only that journal can finish or undo. It
// changes nothing.
func CheckForeign(fsys *fsx.FS, l Layout, jid string) error {
	names, err := fsys.List(l.Work)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		// (A kept database, or the trash of an ended run, is not work in
		// flight.)
		if rd, ok := ParseRunDir(n); ok && rd.Journal != jid && (rd.Kind == "staging" || rd.Kind == "old") {
			this := "this journal's id is " + jid
			if jid == "" {
				this = "the default journal " + l.Journal() + " does not exist"
			}
			return fmt.Errorf("%w: %s belongs to run %d of the kvrflow journal with id %s, which has work in flight on %s: recover it with that journal (kvrflow recover --db %s --journal PATH; kvrflow journal list --journal PATH prints a journal's id); %s; if that journal is lost, look into the directory and move it away by hand",
				ErrForeign, filepath.Join(l.Work, n), rd.Run, rd.Journal, l.DB, l.DB, this)
		}
	}
	return nil
}

// looksLikeWork reports whether dir is a kvrflow directory whatever its
// name (a bind mount of one, say): it holds kvrflow's lock file and a
// journal or run directories.
func looksLikeWork(fsys *fsx.FS, dir string) bool {
	if m, err := fsys.LstatMode(filepath.Join(dir, LockName)); err != nil || !m.IsRegular() {
		return false
	}
	names, err := fsys.List(dir)
	if err != nil {
		return false
	}
	for _, n := range names {
		if _, ok := ParseRunDir(n); ok || n == JournalName || n == QuarantineName {
			return true
		}
	}
	return false
}
