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
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

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
	// Reserve is the room a read-write Open makes sure the journal file
	// has allocated beyond the pages in use, for records on a full disk:
	// DefaultReserve if 0, none if negative (NoReserve). See Reserved.
	Reserve int64
}

// Journal is an open journal file. Its methods are safe for concurrent
// use; each write is one bbolt transaction, durable when it returns.
type Journal struct {
	db   *bolt.DB
	path string
	id   string
	// The outcome of Open's reserve (see Reserved).
	reserved   int64
	reserveErr error
	faults     *fault.Set
	commits    atomic.Int64
}

// Commits returns how many write transactions this handle committed
// (bbolt fdatasyncs each twice: its pages, then its meta page).
func (j *Journal) Commits() int64 { return j.commits.Load() }

// Open opens (creating if needed, unless read-only) the journal at path.
// A read-write Open migrates an older schema and gives a journal without
// an id its id, in one transaction (see checkSchema), and makes sure the
// file has Options.Reserve bytes of room allocated for records on a full
// disk; failing to is not an error of Open's but reported by Reserved. On
// success a created journal is durable at path. On error the journal is
// as it was (a migration is all or nothing), and a retry is safe.
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
	case !fi.Mode().IsRegular():
		// (bbolt would block on a FIFO, and read a device.)
		return nil, fmt.Errorf("open journal %s: %w: not a regular file (%s)", path, ErrCorrupt, fi.Mode().Type())
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
	if !opts.ReadOnly {
		j.reserve(opts.Reserve)
	}
	return j, nil
}

// create makes a new, empty journal at path atomically, so that a journal
// file that exists is always a whole journal: it is built in a temporary
// file beside path, created exclusively under a name of its own (never a
// file of the user's), synced, and moved to path only if path does not
// exist (see linkNoReplace); then the directory is synced. On success a
// journal is at path: this one, or one another process created meanwhile
// by the same protocol. On error path is unchanged; a crash may leave the
// temporary file (path.new-*), which is never opened as a journal.
func create(path string, opts Options) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".new-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		// tmp is this call's own file: removing it can lose nothing of anyone
		// else's. After a rename it is gone; after a link it is a second
		// name of the journal.
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("create journal %s: remove %s: %w", path, tmp, rerr)
		}
	}()
	if err := f.Close(); err != nil {
		return fmt.Errorf("create journal %s: %w", tmp, err)
	}
	// bbolt initialises a file of 0 bytes as a new database.
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
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("create journal %s: %w", tmp, err)
	}
	switch err := linkNoReplace(tmp, path); {
	case errors.Is(err, fs.ErrExist):
		// Another process created the journal meanwhile: it is whole (it was
		// made by this protocol), and it is the one to use.
	case err != nil:
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("create journal %s: %w", path, err)
	}
	return nil
}

// linkNoReplace gives the file oldpath the name newpath, failing with an
// error matching fs.ErrExist if newpath exists: renameat2(RENAME_NOREPLACE),
// or, where the file system does not support it, a hard link (the caller
// removes oldpath). Neither ever replaces a file.
func linkNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return os.Link(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename (no replace)", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// syncDir fsyncs the directory dir, making the names in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
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

// checkSchema checks the meta bucket and loads the journal's id. With
// readOnly false it also creates the buckets of an empty file, migrates an
// older schema and gives a journal without an id its id, all in one
// transaction: on error none of it is durable, and a retry is safe.
func (j *Journal) checkSchema(readOnly bool) error {
	var id []byte
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
		if id = meta.Get(keyID); id != nil && !validID(id) {
			return fmt.Errorf("journal %s: %w: bad journal id %q (want %d lower-case hex digits)", j.path, ErrCorrupt, id, IDLen)
		}
		id = append([]byte(nil), id...) // a copy: bbolt's bytes live only as long as tx
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
		if err := j.view(check); err != nil {
			return err
		}
		j.id = string(id)
		return nil
	}
	// Most opens find a current journal with its id: check it without a
	// write transaction (each costs fsyncs), and write only to create,
	// migrate or give the journal its id.
	current := false
	if err := j.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		current = meta != nil && string(meta.Get(keySchema)) == strconv.Itoa(SchemaVersion) && meta.Get(keyID) != nil
		if current {
			return check(tx)
		}
		return nil
	}); err != nil {
		return err
	}
	if current {
		j.id = string(id)
		return nil
	}
	if err := j.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			if tx.Bucket(bucketRuns) != nil {
				return fmt.Errorf("journal %s: %w: runs without meta", j.path, ErrCorrupt)
			}
			// A bbolt file with buckets of its own belongs to another
			// program (etcd keeps its data in one): never write into it.
			var other []string
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				other = append(other, string(name))
				return nil
			})
			if len(other) > 0 {
				return fmt.Errorf("journal %s: %w: not a kvrflow journal (a bbolt file with buckets %s); give another --journal path", j.path, ErrCorrupt, strings.Join(other, ", "))
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
		if err := check(tx); err != nil {
			return err
		}
		if len(id) == 0 {
			id = []byte(newID())
			return tx.Bucket(bucketMeta).Put(keyID, id)
		}
		return nil
	}); err != nil {
		return err
	}
	j.id = string(id)
	return nil
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
