package check

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// Result says which database DB holds.
type Result string

// The two databases DB may hold.
const (
	Old Result = "old" // the database before the restore (or none)
	New Result = "new" // the backup's
)

// JournalTimeout bounds the wait for the journal's lock.
const JournalTimeout = 10 * time.Second

// Database describes one database DB may hold. At least one field must be
// set.
type Database struct {
	// Absent: there is no database (a restore into a new directory); DB
	// must not exist.
	Absent bool
	// Keys, if not nil, are every key and value: DB must open read-only
	// as a Pebble database holding exactly these.
	Keys map[string]string
	// Files, if not nil, is the Digest of the database: DB must hold the
	// same files, byte for byte.
	Files map[string]string
}

func (d Database) described() bool { return d.Absent || d.Keys != nil || d.Files != nil }

// Target is a database directory to check and what it may hold.
type Target struct {
	// FS is the file system DB is on; nil is the real disk.
	FS vfs.FS
	// DB is the database directory.
	DB string
	// Journal is the journal's path on the real disk; "" is kvrflow's
	// default, DB.kvrflow/journal.db.
	Journal string
	// Old and New are the database before the restore and the backup's.
	Old, New Database
}

// Report is what Recovered found.
type Report struct {
	// DB is which database DB holds.
	DB Result
	// Outcome is the newest run's outcome, "" if the journal has no run
	// (or there is no journal).
	Outcome string
	// Runs is how many runs the journal holds.
	Runs int
}

func (t Target) fs() vfs.FS {
	if t.FS == nil {
		return vfs.Default
	}
	return t.FS
}

func (t Target) journalPath() (string, error) {
	if t.Journal != "" {
		return t.Journal, nil
	}
	l, err := steps.NewLayout(t.DB)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadTarget, err)
	}
	return l.Journal(), nil
}

func (t Target) validate() error {
	switch {
	case t.DB == "":
		return fmt.Errorf("%w: no DB", ErrBadTarget)
	case !t.Old.described() || !t.New.described():
		return fmt.Errorf("%w: the old or the new database is described by nothing", ErrBadTarget)
	case t.New.Absent:
		return fmt.Errorf("%w: the new database cannot be absent", ErrBadTarget)
	}
	return nil
}

// Which says which database DB holds, complete: Old or New. It returns
// an error matching ErrViolated if DB holds neither, and one matching
// ErrBadTarget if it matches both descriptions.
func (t Target) Which() (Result, error) {
	if err := t.validate(); err != nil {
		return "", err
	}
	fs := t.fs()
	if _, err := fs.Stat(t.DB); errors.Is(err, os.ErrNotExist) {
		if t.Old.Absent {
			return Old, nil
		}
		return "", fmt.Errorf("%w: database %s does not exist", ErrViolated, t.DB)
	} else if err != nil {
		return "", fmt.Errorf("%w: database %s: %w", ErrViolated, t.DB, err)
	}
	var got state
	isNew, err := t.New.matches(fs, t.DB, &got)
	if err != nil {
		return "", err
	}
	isOld := false
	if !t.Old.Absent {
		if isOld, err = t.Old.matches(fs, t.DB, &got); err != nil {
			return "", err
		}
	}
	switch {
	case isNew && isOld:
		return "", fmt.Errorf("%w: %s matches both the old and the new database: nothing to tell apart", ErrBadTarget, t.DB)
	case isNew:
		return New, nil
	case isOld:
		return Old, nil
	}
	return "", fmt.Errorf("%w: database %s is neither the old database (%s) nor the new one (%s): %s",
		ErrViolated, t.DB, t.Old.size(), t.New.size(), got.describe())
}

// state is what Which read of DB, read once for both databases.
type state struct {
	files, keys     map[string]string
	filesErr, kvErr error
	readFiles, read bool
}

func (s *state) describe() string {
	var parts []string
	if s.readFiles {
		if s.filesErr != nil {
			parts = append(parts, "its files do not read: "+s.filesErr.Error())
		} else {
			parts = append(parts, fmt.Sprintf("%d files", len(s.files)))
		}
	}
	if s.read {
		if s.kvErr != nil {
			parts = append(parts, "it does not open: "+s.kvErr.Error())
		} else {
			parts = append(parts, fmt.Sprintf("%d keys", len(s.keys)))
		}
	}
	return "it holds " + strings.Join(parts, ", ")
}

func (d Database) size() string {
	if d.Absent {
		return "none"
	}
	var parts []string
	if d.Files != nil {
		parts = append(parts, fmt.Sprintf("%d files", len(d.Files)))
	}
	if d.Keys != nil {
		parts = append(parts, fmt.Sprintf("%d keys", len(d.Keys)))
	}
	return strings.Join(parts, ", ")
}

// matches reports whether dir holds d, reading into s what it has not
// read yet. Files are read before Pebble opens dir (which adds LOCK).
func (d Database) matches(fs vfs.FS, dir string, s *state) (bool, error) {
	if d.Files != nil {
		if !s.readFiles {
			s.files, s.filesErr = Digest(fs, dir)
			s.readFiles = true
		}
		if s.filesErr != nil || !equal(s.files, d.Files) {
			return false, nil
		}
	}
	if d.Keys != nil {
		if !s.read {
			if !s.readFiles { // Digest before Pebble opens dir, for later callers
				s.files, s.filesErr = Digest(fs, dir)
				s.readFiles = true
			}
			s.keys, s.kvErr = Keys(fs, dir)
			s.read = true
		}
		if s.kvErr != nil || !equal(s.keys, d.Keys) {
			return false, nil
		}
	}
	return true, nil
}

// Expect says which database recovery must leave in DB, from the journal
// as a kill left it (read before recovery): New exactly when the newest
// run committed or, in flight, has its commit point record (the event
// entering the workflow's commit point, commit -committed-> finish)
// durable; Old otherwise, and when there is no journal or no run.
func (t Target) Expect() (Result, error) {
	jpath, err := t.journalPath()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(jpath); errors.Is(err, os.ErrNotExist) {
		return Old, nil
	}
	j, err := journal.Open(jpath, journal.Options{ReadOnly: true, Timeout: JournalTimeout})
	if err != nil {
		return "", fmt.Errorf("%w: journal: %w", ErrViolated, err)
	}
	defer j.Close()
	runs, err := j.Runs(1)
	if err != nil {
		return "", fmt.Errorf("%w: journal: %w", ErrViolated, err)
	}
	if len(runs) == 0 {
		return Old, nil
	}
	r := runs[0]
	switch r.Outcome {
	case steps.OutcomeCommitted:
		return New, nil
	case steps.OutcomeRolledBack:
		return Old, nil
	}
	events, err := j.Events(r.ID)
	if err != nil {
		return "", fmt.Errorf("%w: journal: run %d: %w", ErrViolated, r.ID, err)
	}
	def, ok := steps.Workflows[r.Kind]
	if !ok {
		return "", fmt.Errorf("%w: journal: run %d of unknown kind %q", ErrViolated, r.ID, r.Kind)
	}
	for _, ev := range events {
		if ev.To == def.CommitPoint {
			return New, nil
		}
	}
	return Old, nil
}

// Recovered checks the invariant after a recovery (or a run that ended by
// itself): DB is the old or the new database, complete (Which); the
// journal, if any, has no run in flight, its runs' events form chains
// (Journal), and its newest run committed exactly when DB is the new
// database (no journal: DB must be the old one); DB.kvrflow holds no
// staging-* or old-* directory. The error matches ErrViolated.
func (t Target) Recovered() (Report, error) {
	which, err := t.Which()
	if err != nil {
		return Report{}, err
	}
	rep := Report{DB: which}
	jpath, err := t.journalPath()
	if err != nil {
		return rep, err
	}
	if _, err := os.Stat(jpath); errors.Is(err, os.ErrNotExist) {
		if which != Old {
			return rep, fmt.Errorf("%w: no journal, yet DB is the new database", ErrViolated)
		}
	} else {
		if err := Journal(jpath); err != nil {
			return rep, err
		}
		j, err := journal.Open(jpath, journal.Options{ReadOnly: true, Timeout: JournalTimeout})
		if err != nil {
			return rep, fmt.Errorf("%w: journal: %w", ErrViolated, err)
		}
		runs, err := j.Runs(0)
		j.Close()
		if err != nil {
			return rep, fmt.Errorf("%w: journal: %w", ErrViolated, err)
		}
		rep.Runs = len(runs)
		if len(runs) > 0 {
			rep.Outcome = runs[len(runs)-1].Outcome
		}
		if committed := rep.Outcome == steps.OutcomeCommitted; committed != (which == New) {
			return rep, fmt.Errorf("%w: DB is the %s database but the newest run's outcome is %q", ErrViolated, which, rep.Outcome)
		}
	}
	if names, err := t.fs().List(t.DB + ".kvrflow"); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, "staging-") || strings.HasPrefix(n, "old-") {
				return rep, fmt.Errorf("%w: %s left in %s.kvrflow", ErrViolated, n, t.DB)
			}
		}
	}
	return rep, nil
}

// Journal checks the journal at path: no run in flight (by the run
// records and by the in-flight index), and every run's events form a
// chain: sequence numbers 1..n, each event starting in the state the
// previous one ended in (the first in the workflow's start state), the
// last ending in the run's state, and a run with an outcome has an end
// time. The error matches ErrViolated and lists every break found.
func Journal(path string) error {
	j, err := journal.Open(path, journal.Options{ReadOnly: true, Timeout: JournalTimeout})
	if err != nil {
		return fmt.Errorf("%w: journal: %w", ErrViolated, err)
	}
	defer j.Close()
	var errs []error
	if runs, err := j.InFlight(""); err != nil || len(runs) > 0 {
		errs = append(errs, fmt.Errorf("runs in flight %+v (err %v)", runs, err))
	}
	runs, err := j.Runs(0)
	if err != nil {
		return fmt.Errorf("%w: journal: %w", ErrViolated, err)
	}
	for _, r := range runs {
		if r.InFlight() {
			errs = append(errs, fmt.Errorf("run %d still in flight in %s", r.ID, r.State))
		}
		events, err := j.Events(r.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %d: %w", r.ID, err))
			continue
		}
		state := steps.Restore.Start // every workflow starts in new
		if def, ok := steps.Workflows[r.Kind]; ok {
			state = def.Start
		}
		for i, ev := range events {
			if ev.Seq != uint64(i+1) || ev.From != state {
				errs = append(errs, fmt.Errorf("run %d event %d: seq %d %s -%s-> %s, want seq %d from %s", r.ID, i, ev.Seq, ev.From, ev.Event, ev.To, i+1, state))
			}
			state = ev.To
		}
		if state != r.State || r.Events != uint64(len(events)) {
			errs = append(errs, fmt.Errorf("run %d in state %s with %d events, its events end in %s (%d)", r.ID, r.State, r.Events, state, len(events)))
		}
		if !r.InFlight() && r.End.IsZero() {
			errs = append(errs, fmt.Errorf("run %d has outcome %s but no end time", r.ID, r.Outcome))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: journal %s: %w", ErrViolated, path, errors.Join(errs...))
	}
	return nil
}

// Digest maps each file below dir on fs (nil: the real disk), by its path
// relative to dir, to its size and CRC-32C, and each directory below dir
// to "<dir>". dir's own LOCK, which Pebble and RocksDB create empty when
// they open a database, even read-only, is left out.
func Digest(fs vfs.FS, dir string) (map[string]string, error) {
	if fs == nil {
		fs = vfs.Default
	}
	out := map[string]string{}
	table := crc32.MakeTable(crc32.Castagnoli)
	var walk func(rel string) error
	walk = func(rel string) error {
		names, err := fs.List(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		for _, n := range names {
			r := filepath.Join(rel, n)
			if r == "LOCK" {
				continue
			}
			p := filepath.Join(dir, r)
			fi, err := fs.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				out[r] = "<dir>"
				if err := walk(r); err != nil {
					return err
				}
				continue
			}
			f, err := fs.Open(p)
			if err != nil {
				return err
			}
			h := crc32.New(table)
			size, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			out[r] = fmt.Sprintf("%d:%08x", size, h.Sum32())
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return out, nil
}

// Keys returns every key and value of the Pebble database dir on fs (nil:
// the real disk), opened read-only; an error if it does not open or a
// block does not read (corruption is an error, not a panic).
func Keys(fs vfs.FS, dir string) (kv map[string]string, err error) {
	opts := &pebble.Options{ReadOnly: true, ErrorIfNotExists: true, Logger: quiet{},
		EventListener: &pebble.EventListener{DataCorruption: func(pebble.DataCorruptionInfo) {}}}
	if fs != nil {
		opts.FS = fs
	}
	defer func() {
		if r := recover(); r != nil {
			kv, err = nil, fmt.Errorf("read %s: %v", dir, r)
		}
	}()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// Equal reports whether two maps (digests, or keys and values) are the
// same.
func Equal(a, b map[string]string) bool { return equal(a, b) }

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// quiet drops Pebble's log lines.
type quiet struct{}

func (quiet) Infof(string, ...any)         {}
func (quiet) Errorf(string, ...any)        {}
func (quiet) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
