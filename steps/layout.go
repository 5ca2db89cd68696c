package steps

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Layout names every path kvrflow uses for one database directory. All of
// kvrflow's own files live in Work, the sibling directory DB + ".kvrflow",
// on the same file system as DB; nothing of kvrflow's is ever put in DB.
type Layout struct {
	DB         string // the database directory
	Parent     string // DB's parent
	Work       string // DB.kvrflow
	Quarantine string // Work/quarantine
}

// Names inside Work.
const (
	JournalName    = "journal.db"
	LockName       = "lock"
	QuarantineName = "quarantine"
	stagingPrefix  = "staging-"
	oldPrefix      = "old-"
)

// NewLayout returns the layout for db, made absolute and clean.
func NewLayout(db string) (Layout, error) {
	if db == "" {
		return Layout{}, fmt.Errorf("%w: empty database path", ErrBadPath)
	}
	abs, err := filepath.Abs(db)
	if err != nil {
		return Layout{}, fmt.Errorf("%w: %s: %w", ErrBadPath, db, err)
	}
	if abs == filepath.Dir(abs) {
		return Layout{}, fmt.Errorf("%w: %s: the database cannot be a root directory", ErrBadPath, abs)
	}
	work := abs + ".kvrflow"
	return Layout{DB: abs, Parent: filepath.Dir(abs), Work: work, Quarantine: filepath.Join(work, QuarantineName)}, nil
}

// Resolved returns the layout with symbolic links in DB's parent
// resolved on the real disk, so that one database has one name in the
// journal however the operator spells its path. (DB itself may not exist
// yet; a DB that is a symbolic link is refused by Precheck.)
func (l Layout) Resolved(resolve func(string) string) Layout {
	parent := resolve(l.Parent)
	if parent == l.Parent {
		return l
	}
	db := filepath.Join(parent, filepath.Base(l.DB))
	work := db + ".kvrflow"
	return Layout{DB: db, Parent: parent, Work: work, Quarantine: filepath.Join(work, QuarantineName)}
}

// RunDirID returns the run id of a staging-N or old-N name in Work.
func RunDirID(name string) (uint64, bool) {
	_, id, ok := parseRunDir(name)
	return id, ok
}

// Journal is the default journal path.
func (l Layout) Journal() string { return filepath.Join(l.Work, JournalName) }

// Lock is the path of kvrflow's own lock for DB.
func (l Layout) Lock() string { return filepath.Join(l.Work, LockName) }

// Staging is where run id builds the new database.
func (l Layout) Staging(id uint64) string {
	return filepath.Join(l.Work, stagingPrefix+strconv.FormatUint(id, 10))
}

// Old is where run id moves the old database during a two-rename commit.
func (l Layout) Old(id uint64) string {
	return filepath.Join(l.Work, oldPrefix+strconv.FormatUint(id, 10))
}

// KvrocksTmp is the temporary name Apache Kvrocks gives the old database
// while it restores (DB + ".tmp"); a stale one is quarantined, never removed.
func (l Layout) KvrocksTmp() string { return l.DB + ".tmp" }

// parseRunDir returns the run id of a staging or old directory name.
func parseRunDir(name string) (kind string, id uint64, ok bool) {
	for _, p := range []string{stagingPrefix, oldPrefix} {
		if rest, found := strings.CutPrefix(name, p); found {
			v, err := strconv.ParseUint(rest, 10, 64)
			if err == nil && strconv.FormatUint(v, 10) == rest {
				return strings.TrimSuffix(p, "-"), v, true
			}
		}
	}
	return "", 0, false
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func baseName(path string) string { return filepath.Base(path) }
