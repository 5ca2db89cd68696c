package journal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/journal"
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// editBolt changes the journal at path with bbolt directly, in one
// transaction, as damage or an older kvrflow would.
func editBolt(tb testing.TB, path string, fn func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
}

// openID opens the journal at path, returns its id and closes it.
func openID(tb testing.TB, path string, opts journal.Options) string {
	tb.Helper()
	j, err := journal.Open(path, opts)
	if err != nil {
		tb.Fatalf("open %s (read-only %v): %v", path, opts.ReadOnly, err)
	}
	defer j.Close()
	return j.ID()
}

func TestID_IsSixteenHexDigitsAndNeverChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	id := openID(t, path, journal.Options{})
	if !idPattern.MatchString(id) {
		t.Fatalf("ID() = %q, want 16 lower-case hex digits", id)
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	endedRun(t, j)
	endedRun(t, j)
	if got := j.ID(); got != id {
		t.Errorf("ID after reopen = %q, want %q", got, id)
	}
	if _, err := j.Prune(1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, j)
	j.Close()
	if got := openID(t, path, journal.Options{ReadOnly: true}); got != id {
		t.Errorf("ID read-only after a prune = %q, want %q", got, id)
	}
	if other := openID(t, filepath.Join(t.TempDir(), "journal.db"), journal.Options{}); other == id {
		t.Errorf("two journals share the id %q", id)
	}
}

func TestID_JournalWithoutOneGetsItAtTheFirstReadWriteOpen(t *testing.T) {
	path := validJournal(t, 3)
	editBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("id")) })

	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if id := j.ID(); id != "" {
		t.Errorf("read-only ID of a journal without one = %q, want \"\"", id)
	}
	mustCheck(t, j)
	j.Close()

	j, err = journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := j.ID()
	if !idPattern.MatchString(id) {
		t.Fatalf("ID() = %q, want 16 lower-case hex digits", id)
	}
	if c := j.Commits(); c != 1 {
		t.Errorf("giving the journal its id took %d commits, want 1", c)
	}
	mustCheck(t, j)
	j.Close()
	if got := openID(t, path, journal.Options{ReadOnly: true}); got != id {
		t.Errorf("ID read-only after it was given = %q, want %q", got, id)
	}
	if got := openID(t, path, journal.Options{}); got != id {
		t.Errorf("ID at the next read-write open = %q, want %q", got, id)
	}
}

func TestID_MigrationGivesTheIDInTheSameTransaction(t *testing.T) {
	path := v1Copy(t)
	j := mustOpen(t, path)
	if !idPattern.MatchString(j.ID()) {
		t.Errorf("ID of a migrated journal = %q, want 16 lower-case hex digits", j.ID())
	}
	if c := j.Commits(); c != 1 {
		t.Errorf("migration and id took %d commits, want 1", c)
	}
	mustCheck(t, j)
}

func TestID_MalformedIsCorrupt(t *testing.T) {
	for _, bad := range []string{"", "../../etc", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0"} {
		path := validJournal(t, 1)
		editBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("id"), []byte(bad)) })
		for _, ro := range []bool{true, false} {
			j, err := journal.Open(path, journal.Options{ReadOnly: ro})
			if !errors.Is(err, journal.ErrCorrupt) {
				if err == nil {
					j.Close()
				}
				t.Errorf("Open (read-only %v) of a journal with id %q = %v, want ErrCorrupt", ro, bad, err)
			}
		}
	}
}

func TestCreate_LeavesAUsersFilesBesideTheJournalAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	mine := map[string][]byte{"journal.db.new": []byte("the user's own file"), "journal.db.tmp": []byte("another")}
	for name, data := range mine {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustOpen(t, path)
	for name, data := range mine {
		if got := readFile(t, filepath.Join(dir, name)); string(got) != string(data) {
			t.Errorf("%s holds %q after the journal was created, want %q", name, got, data)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(mine)+1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want the journal and the user's files only (no temporary file left)", names)
	}
}

// TestOpen_AnotherProgramsBboltFileIsRefused: a bbolt file with buckets
// of its own is not a journal: Open refuses it (ErrCorrupt) and writes
// nothing into it.
func TestOpen_AnotherProgramsBboltFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("app"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := journal.Open(path, journal.Options{}); !errors.Is(err, journal.ErrCorrupt) || !strings.Contains(err.Error(), "not a kvrflow journal") {
		if j != nil {
			j.Close()
		}
		t.Fatalf("Open = %v, want ErrCorrupt: not a kvrflow journal", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("Open wrote into another program's bbolt file")
	}
}
