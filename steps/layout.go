package steps

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kvrflow/kvrflow/internal/fsx"
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
	previousPrefix = "previous-"
	trashPrefix    = "trash-"
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

// RunDir is a run directory's name in Work, parsed: staging-JID-N,
// old-JID-N or previous-JID-N, where JID is the journal's id and N the
// run's.
type RunDir struct {
	Kind    string // "staging", "old" or "previous"
	Journal string // the id of the journal whose run made it
	Run     uint64
}

// ParseRunDir parses a staging-JID-N or old-JID-N name. A name without a
// journal id (staging-N, made by kvrflow before journals had ids) does
// not parse: nothing proves which journal made it.
func ParseRunDir(name string) (RunDir, bool) {
	for _, p := range []string{stagingPrefix, oldPrefix, previousPrefix, trashPrefix} {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		jid, num, ok := strings.Cut(rest, "-")
		if !ok || !validJournalID(jid) {
			return RunDir{}, false
		}
		v, err := strconv.ParseUint(num, 10, 64)
		if err != nil || strconv.FormatUint(v, 10) != num || v == 0 {
			return RunDir{}, false
		}
		return RunDir{Kind: strings.TrimSuffix(p, "-"), Journal: jid, Run: v}, true
	}
	return RunDir{}, false
}

// validJournalID reports whether s has the form of a journal id: 16
// lower-case hex digits.
func validJournalID(s string) bool {
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

// Journal is the default journal path.
func (l Layout) Journal() string { return filepath.Join(l.Work, JournalName) }

// Lock is the path of kvrflow's own lock for DB.
func (l Layout) Lock() string { return filepath.Join(l.Work, LockName) }

// Staging is where run id of journal jid builds the new database.
func (l Layout) Staging(jid string, id uint64) string {
	return filepath.Join(l.Work, stagingPrefix+jid+"-"+strconv.FormatUint(id, 10))
}

// Old is where run id of journal jid moves the old database during a
// two-rename commit.
func (l Layout) Old(jid string, id uint64) string {
	return filepath.Join(l.Work, oldPrefix+jid+"-"+strconv.FormatUint(id, 10))
}

// Previous is where run id of journal jid keeps the database it replaced
// (restore --keep-old, undo).
func (l Layout) Previous(jid string, id uint64) string {
	return filepath.Join(l.Work, previousPrefix+jid+"-"+strconv.FormatUint(id, 10))
}

// Trash is where an interrupted run N puts its partial staging: a
// restore of the same source resumes from it, another restore (or
// recover, if nothing in it was journaled complete) removes it (see
// Rollback and Resume).
func (l Layout) Trash(jid string, id uint64) string {
	return filepath.Join(l.Work, trashPrefix+jid+"-"+strconv.FormatUint(id, 10))
}

// KvrocksTmp is the temporary name Apache Kvrocks gives the old database
// while it restores (DB + ".tmp"); a stale one is quarantined, never removed.
func (l Layout) KvrocksTmp() string { return l.DB + ".tmp" }

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// SameDB reports whether the database paths a and b name one database:
// the same path, or (a bind mount, another spelling the resolution of
// symbolic links does not see) kvrflow directories with the same identity.
func SameDB(fsys *fsx.FS, a, b string) bool {
	if a == b {
		return true
	}
	ia, err1 := fsys.DirID(a + ".kvrflow")
	ib, err2 := fsys.DirID(b + ".kvrflow")
	if err1 != nil || err2 != nil {
		return false
	}
	same, known := fsx.SameID(ia, ib)
	return same && known
}
