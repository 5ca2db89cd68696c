package journal_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/journal"
)

func key(id uint64) []byte {
	return []byte{byte(id >> 56), byte(id >> 48), byte(id >> 40), byte(id >> 32), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
}

// contradicted returns the path of a journal of three runs (1 ended, 2 in
// flight, 3 ended; run 2's error text mimics an outcome field) after edit
// changed it with bbolt directly.
func contradicted(tb testing.TB, edit func(tx *bolt.Tx) error) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	endedRun(tb, j)
	r := begin(tb, j, "/db", "new")
	mustAppend(tb, j, r.ID, "new", "start", "precheck", nil, "", `disk full, "outcome":"committed"`)
	endedRun(tb, j)
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	editBolt(tb, path, edit)
	return path
}

// openRW opens path read-write, as recovery does, and closes it at the
// end of the test.
func openRW(tb testing.TB, path string) *journal.Journal {
	tb.Helper()
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { j.Close() })
	return j
}

func TestInFlight_ContradictionsAreCorruptAndNameTheRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(tx *bolt.Tx) error
		want string
	}{{
		// The run recovery must roll back would be invisible to it.
		name: "in-flight run missing from the index",
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("inflight")).Delete(key(2)) },
		want: `run 2 is in flight by its record (state "precheck") but missing from the in-flight index`,
	}, {
		name: "index entry whose run record was removed",
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("runs")).Delete(key(2)) },
		want: "run 2 is in the in-flight index but has no run record",
	}, {
		name: "index entry for a run never begun",
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("inflight")).Put(key(9), []byte("/db")) },
		want: "run 9 is in the in-flight index but has no run record",
	}, {
		name: "ended run still in the index",
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("inflight")).Put(key(3), []byte("/db")) },
		want: `run 3 ended by its record (outcome "committed") but is still in the in-flight index`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			j := openRW(t, contradicted(t, tc.edit))
			// Every target: the journal is one database's, and it contradicts
			// itself whichever target is asked about.
			for _, target := range []string{"", "/db", "/elsewhere"} {
				runs, err := j.InFlight(target)
				if !errors.Is(err, journal.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("InFlight(%q) = %v, %v; want ErrCorrupt saying %q", target, runs, err, tc.want)
				}
			}
		})
	}
}

func TestInFlight_ConsistentJournalListsTheRunsInFlight(t *testing.T) {
	j := openRW(t, contradicted(t, func(*bolt.Tx) error { return nil }))
	runs, err := j.InFlight("/db")
	if err != nil || len(runs) != 1 || runs[0].ID != 2 {
		t.Fatalf("InFlight = %v, %v; want run 2", runs, err)
	}
	if runs, err := j.InFlight("/elsewhere"); err != nil || len(runs) != 0 {
		t.Errorf("InFlight of another target = %v, %v; want none", runs, err)
	}
}

func TestRun_RecordRemovedButTracesLeftIsCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint64
		edit func(tx *bolt.Tx) error
		want string
	}{{
		name: "ended run: begin record and events left",
		id:   1,
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("runs")).Delete(key(1)) },
		want: "run 1: journal is unreadable or inconsistent: it has a begin record, an events bucket but no run record",
	}, {
		name: "in-flight run: index entry left too",
		id:   2,
		edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte("runs")).Delete(key(2)) },
		want: "it has a begin record, an events bucket, an in-flight index entry but no run record",
	}, {
		name: "only the events left",
		id:   3,
		edit: func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("runs")).Delete(key(3)); err != nil {
				return err
			}
			return tx.Bucket([]byte("begins")).Delete(key(3))
		},
		want: "it has an events bucket but no run record",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			j := openRW(t, contradicted(t, tc.edit))
			if r, err := j.Run(tc.id); !errors.Is(err, journal.ErrCorrupt) || errors.Is(err, journal.ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run(%d) = %+v, %v; want ErrCorrupt (not ErrNotFound) saying %q", tc.id, r, err, tc.want)
			}
			if _, err := j.Events(tc.id); !errors.Is(err, journal.ErrCorrupt) {
				t.Errorf("Events(%d) = %v, want ErrCorrupt", tc.id, err)
			}
			if err := j.Append(tc.id, "precheck", "fail", "failed", nil, "rolled_back", ""); !errors.Is(err, journal.ErrCorrupt) {
				t.Errorf("Append to run %d = %v, want ErrCorrupt", tc.id, err)
			}
		})
	}
}

func TestRun_PrunedRunIsNotFound(t *testing.T) {
	j := newJournal(t)
	endedRun(t, j)
	endedRun(t, j)
	if _, err := j.Prune(1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Run(1); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Run of a pruned run = %v, want ErrNotFound", err)
	}
}

func TestCheck_IndexEntryWithoutRunRecordIsAProblem(t *testing.T) {
	j := openRW(t, contradicted(t, func(tx *bolt.Tx) error { return tx.Bucket([]byte("inflight")).Put(key(9), []byte("/db")) }))
	probs, err := j.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Run != 9 || !strings.Contains(probs[0].What, "no run record") {
		t.Errorf("Check = %v, want one problem: run 9 indexed in flight without a run record", probs)
	}
}
