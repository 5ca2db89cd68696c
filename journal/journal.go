package journal

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// SchemaVersion is the version of the on-disk layout this package writes.
// Version 1 had no hash chain; Open migrates it (see migrate.go).
const SchemaVersion = 2

// DefaultTimeout is how long Open waits for another process's lock.
const DefaultTimeout = 2 * time.Second

// Fault points around each journal commit.
var (
	PointBeforeCommit = fault.Register("journal.before-commit", "before a journal transaction commits")
	PointAfterCommit  = fault.Register("journal.after-commit", "after a journal transaction is durable")
)

var (
	bucketMeta     = []byte("meta")
	bucketRuns     = []byte("runs")
	bucketEvents   = []byte("events")
	bucketInFlight = []byte("inflight")
	bucketBegins   = []byte("begins")
	keySchema      = []byte("schema")
	keyHead        = []byte("head")   // begin hash of the latest run
	keyAnchor      = []byte("anchor") // prev_run the first run must carry (after a prune)
)

// Run is the record of one workflow run.
type Run struct {
	ID      uint64    `json:"id"`
	Kind    string    `json:"kind"`
	Source  string    `json:"source,omitempty"`
	Target  string    `json:"target"`
	Mode    string    `json:"mode,omitempty"`
	Engine  string    `json:"engine,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	State   string    `json:"state"`
	Outcome string    `json:"outcome,omitempty"`
	Error   string    `json:"error,omitempty"`
	Events  uint64    `json:"events"`
	// The run's hash chain (see chain.go): the hash of the previous run's
	// begin record, of its own begin record (the first link of its event
	// chain), and of its last event.
	PrevRun   string `json:"prev_run"`
	FirstHash string `json:"first_hash"`
	FinalHash string `json:"final_hash"`
}

// InFlight reports whether the run has not reached a terminal state.
func (r *Run) InFlight() bool { return r.Outcome == "" }

// Event is one journaled transition of a run. From == To for a note, a
// record made inside a step before it acts on disk.
type Event struct {
	Run     uint64          `json:"run"`
	Seq     uint64          `json:"seq"`
	From    string          `json:"from"`
	Event   string          `json:"event"`
	To      string          `json:"to"`
	Time    time.Time       `json:"time"`
	Details json.RawMessage `json:"details,omitempty"`
	// Prev is the SHA-256 (hex) of the run's previous event, or of its
	// begin record for the first event.
	Prev string `json:"prev"`
	// Hash is the SHA-256 (hex) of the event's canonical encoding (every
	// field above, as stored); it is stored beside the encoding, not in it.
	Hash string `json:"-"`
}

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for another process's lock (DefaultTimeout
	// if zero).
	Timeout time.Duration
	// ReadOnly opens an existing journal for reading; it takes a shared
	// lock and never creates the file.
	ReadOnly bool
	// Faults are hit around each commit.
	Faults *fault.Set
}

// Journal is an open journal file. Its methods are safe for concurrent
// use; each write is one bbolt transaction, durable when it returns.
type Journal struct {
	db      *bolt.DB
	path    string
	faults  *fault.Set
	commits atomic.Int64
}

// Commits returns how many write transactions this handle committed
// (bbolt fdatasyncs each twice: its pages, then its meta page).
func (j *Journal) Commits() int64 { return j.commits.Load() }

// Open opens (creating if needed, unless read-only) the journal at path.
func Open(path string, opts Options) (*Journal, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		if err := create(path, opts); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	case fi.Size() == 0:
		// A journal is created whole (see create): an empty file is damage,
		// and whatever runs it held are unknown.
		return nil, fmt.Errorf("open journal %s: %w: empty file", path, ErrCorrupt)
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	j := &Journal{db: db, path: path, faults: opts.Faults}
	if err := j.checkSize(); err != nil {
		db.Close()
		return nil, err
	}
	if err := j.checkSchema(opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return j, nil
}

// create makes a new, empty journal at path atomically: it is built and
// synced under a temporary name, renamed into place and its directory
// synced, so that a journal.db that exists is always a whole journal.
func create(path string, opts Options) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return fmt.Errorf("create journal %s: %w", tmp, err)
	}
	j := &Journal{db: db, path: tmp}
	err = j.checkSchema(false)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create journal %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("create journal %s: sync dir: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("create journal %s: sync dir: %w", path, err)
	}
	return nil
}

// checkSize refuses a journal whose file is shorter than the pages its
// meta page says are in use (a truncated file): reading those pages
// through bbolt's mmap would fault.
func (j *Journal) checkSize() error {
	fi, err := os.Stat(j.path)
	if err != nil {
		return fmt.Errorf("open journal %s: %w", j.path, err)
	}
	var used int64
	if err := j.view(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		return err
	}
	if fi.Size() < used {
		return fmt.Errorf("open journal %s: %w: file is %d bytes, its pages in use reach %d (truncated)", j.path, ErrCorrupt, fi.Size(), used)
	}
	return nil
}

// openBolt opens the bbolt file, classifying its errors. bbolt can panic on
// a file whose pages are garbage; that is reported as ErrCorrupt too.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	// A fault reading the mmap (a page past the end of a truncated file)
	// becomes a panic recovered below, not a crash of the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("open journal %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open journal %s: %w (waited %s)", path, ErrLocked, opts.Timeout)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	default:
		return nil, fmt.Errorf("open journal %s: %w: %w", path, ErrCorrupt, err)
	}
}

func (j *Journal) checkSchema(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("journal %s: %w: no meta bucket", j.path, ErrCorrupt)
		}
		v, err := strconv.Atoi(string(meta.Get(keySchema)))
		if err != nil {
			return fmt.Errorf("journal %s: %w: bad schema version %q", j.path, ErrCorrupt, meta.Get(keySchema))
		}
		if v > SchemaVersion {
			return fmt.Errorf("journal %s: %w: schema %d, this kvrflow knows %d", j.path, ErrNewerSchema, v, SchemaVersion)
		}
		if v < SchemaVersion {
			if readOnly {
				return fmt.Errorf("journal %s: %w: schema %d; any kvrflow restore or recover migrates it to %d", j.path, ErrOldSchema, v, SchemaVersion)
			}
			if err := migrate(tx, v); err != nil {
				return fmt.Errorf("journal %s: migrate schema %d to %d: %w", j.path, v, SchemaVersion, err)
			}
		}
		for _, b := range [][]byte{bucketRuns, bucketEvents, bucketInFlight, bucketBegins} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("journal %s: %w: no %s bucket", j.path, ErrCorrupt, b)
			}
		}
		return nil
	}
	if readOnly {
		return j.view(check)
	}
	// Most opens find a current journal: check it without a write
	// transaction (each costs fsyncs), and write only to create or migrate.
	current := false
	if err := j.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		current = meta != nil && string(meta.Get(keySchema)) == strconv.Itoa(SchemaVersion)
		if current {
			return check(tx)
		}
		return nil
	}); err != nil || current {
		return err
	}
	return j.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			if tx.Bucket(bucketRuns) != nil {
				return fmt.Errorf("journal %s: %w: runs without meta", j.path, ErrCorrupt)
			}
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
			for _, b := range [][]byte{bucketRuns, bucketEvents, bucketInFlight, bucketBegins} {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
		}
		return check(tx)
	})
}

// Path returns the journal's file name.
func (j *Journal) Path() string { return j.path }

// Close closes the journal. It is safe to call twice.
func (j *Journal) Close() error {
	if j == nil || j.db == nil {
		return nil
	}
	err := j.db.Close()
	j.db = nil
	return err
}

func (j *Journal) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read journal %s: %w: %v", j.path, ErrCorrupt, r)
		}
	}()
	return j.db.View(fn)
}

func (j *Journal) update(fn func(*bolt.Tx) error) error {
	if err := j.faults.Hit(PointBeforeCommit); err != nil {
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	if err := j.db.Update(fn); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrOldSchema) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return err
		}
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	j.commits.Add(1)
	if err := j.faults.Hit(PointAfterCommit); err != nil {
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	return nil
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
