package journal_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
)

// v1Fixture is a journal written by schema 1 (no hash chain): run 1
// committed (8 events, a note among them), run 2 rolled back (5), run 3 in
// flight in write (3).
const v1Fixture = "../testdata/journal/v1.db"

// v1Copy copies the schema 1 fixture into a temporary directory.
func v1Copy(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	if err := os.WriteFile(path, readFile(tb, v1Fixture), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// v1Records reads the runs and events of a schema 1 journal with bbolt
// directly: plain JSON, as schema 1 stored them.
func v1Records(tb testing.TB, path string) ([]journal.Run, map[uint64][]journal.Event) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var runs []journal.Run
	evs := map[uint64][]journal.Event{}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("runs")).ForEach(func(k, v []byte) error {
			var r journal.Run
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			runs = append(runs, r)
			return tx.Bucket([]byte("events")).Bucket(k).ForEach(func(_, v []byte) error {
				var ev journal.Event
				if err := json.Unmarshal(v, &ev); err != nil {
					return err
				}
				evs[r.ID] = append(evs[r.ID], ev)
				return nil
			})
		})
	}); err != nil {
		tb.Fatal(err)
	}
	return runs, evs
}

func TestMigrate_ReadOnlyOpenOfSchema1IsErrOldSchema(t *testing.T) {
	path := v1Copy(t)
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err == nil {
		j.Close()
	}
	if !errors.Is(err, journal.ErrOldSchema) {
		t.Fatalf("read-only Open of a schema 1 journal = %v, want ErrOldSchema", err)
	}
	if _, err := audit.Verify(path, nil); !errors.Is(err, journal.ErrOldSchema) {
		t.Errorf("Verify of a schema 1 journal = %v, want ErrOldSchema", err)
	}
	if !bytes.Equal(readFile(t, path), readFile(t, v1Fixture)) {
		t.Error("a read-only open changed the file")
	}
}

// TestMigrate_ReadWriteOpenMigratesKeepingEveryRecord: the first
// read-write open migrates the schema 1 fixture to schema 2: every run and
// event kept as it was (ids, kinds, sources, states, outcomes, times;
// events' from, event, to, time and details byte for byte), now chained;
// it verifies; run 3 is still in flight and can go on; opening again
// changes nothing, not a byte.
func TestMigrate_ReadWriteOpenMigratesKeepingEveryRecord(t *testing.T) {
	path := v1Copy(t)
	oldRuns, oldEvs := v1Records(t, path)
	if len(oldRuns) != 3 {
		t.Fatalf("the fixture holds %d runs, want 3", len(oldRuns))
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := j.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(oldRuns) {
		t.Fatalf("%d runs after migration, %d before", len(runs), len(oldRuns))
	}
	for i, r := range runs {
		o := oldRuns[i]
		if r.ID != o.ID || r.Kind != o.Kind || r.Source != o.Source || r.Target != o.Target || r.Mode != o.Mode || r.Engine != o.Engine ||
			r.State != o.State || r.Outcome != o.Outcome || r.Events != o.Events || !r.Start.Equal(o.Start) || !r.End.Equal(o.End) {
			t.Errorf("run after migration\n %+v\nbefore\n %+v", r, o)
		}
		evs, err := j.Events(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != len(oldEvs[r.ID]) {
			t.Fatalf("run %d: %d events after migration, %d before", r.ID, len(evs), len(oldEvs[r.ID]))
		}
		prev := r.FirstHash
		for k, ev := range evs {
			o := oldEvs[r.ID][k]
			if ev.Run != o.Run || ev.Seq != o.Seq || ev.From != o.From || ev.Event != o.Event || ev.To != o.To ||
				!ev.Time.Equal(o.Time) || !bytes.Equal(ev.Details, o.Details) {
				t.Errorf("run %d event after migration\n %+v\nbefore\n %+v", r.ID, ev, o)
			}
			if ev.Prev != prev {
				t.Errorf("run %d event %d links to %s, want %s", r.ID, ev.Seq, ev.Prev, prev)
			}
			prev = ev.Hash
		}
		if r.FinalHash != prev {
			t.Errorf("run %d: final hash %s, its last event's %s", r.ID, r.FinalHash, prev)
		}
	}
	if probs, err := j.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check after migration: %v, %v", probs, err)
	}
	inflight, err := j.InFlight("")
	if err != nil || len(inflight) != 1 || inflight[0].ID != 3 || inflight[0].State != "write" {
		t.Errorf("in flight after migration: %+v, %v; want run 3 in write", inflight, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(path, nil)
	if err != nil || !rep.OK() || !slices.Equal(rep.InFlight, []uint64{3}) || rep.Runs != 3 {
		t.Errorf("Verify after migration = %+v, %v; want 3 runs, run 3 in flight, no problem", rep, err)
	}

	migrated := readFile(t, path)
	if j, err = journal.Open(path, journal.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, path), migrated) {
		t.Error("opening the migrated journal again changed the file")
	}

	// The in-flight run goes on, on the new chain.
	j = mustOpen(t, path)
	mustAppend(t, j, 3, "write", "fail", "rollback", map[string]string{"error": "x"}, "", "x")
	mustAppend(t, j, 3, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
	if probs, err := j.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check after run 3 ended: %v, %v", probs, err)
	}
}

// TestMigrate_FailedMigrationLeavesTheFileUntouched: the migration is one
// bbolt transaction. A fault at journal.before-commit (an I/O error, or a
// crash, here a panic the test recovers) fails the open before it writes;
// a schema 1 journal whose last run is damaged fails the migration after
// it has rewritten the runs before it, in the same transaction. Either
// way the file is left byte for byte as it was, and after the I/O error a
// later open migrates it.
func TestMigrate_FailedMigrationLeavesTheFileUntouched(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   string
		damage bool
	}{
		{"eio before commit", "journal.before-commit:eio", false},
		{"crash before commit", "journal.before-commit:crash", false},
		{"damaged last run", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := v1Copy(t)
			if tc.damage {
				damageV1(t, path)
			}
			before := readFile(t, path)
			faults, err := fault.Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			type crash struct{}
			faults = faults.SetCrash(func(string) { panic(crash{}) })
			err = func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(crash); !ok {
							panic(r)
						}
						err = errors.New("crashed")
					}
				}()
				j, err := journal.Open(path, journal.Options{Faults: faults})
				if err == nil {
					j.Close()
				}
				return err
			}()
			switch {
			case err == nil:
				t.Fatal("Open succeeded")
			case tc.damage && !errors.Is(err, journal.ErrCorrupt):
				t.Errorf("Open of a damaged schema 1 journal = %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Fatal("a failed migration changed the file")
			}
			if tc.damage || err.Error() == "crashed" {
				// The crash left its bbolt handle, and its lock, behind, as
				// a dead process would not; the eio case shows the retry.
				return
			}
			j := mustOpen(t, path)
			if probs, err := j.Check(); err != nil || len(probs) > 0 {
				t.Errorf("Check after migrating on the second try: %v, %v", probs, err)
			}
		})
	}
}

// TestMigrate_FaultAfterCommitLeavesItMigrated: a failure after the
// migration's commit (journal.after-commit) fails the open, but the
// journal is migrated, whole.
func TestMigrate_FaultAfterCommitLeavesItMigrated(t *testing.T) {
	path := v1Copy(t)
	faults, err := fault.Parse("journal.after-commit:eio")
	if err != nil {
		t.Fatal(err)
	}
	if j, err := journal.Open(path, journal.Options{Faults: faults}); err == nil {
		j.Close()
		t.Fatal("Open succeeded despite the fault")
	}
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open after the migration committed: %v", err)
	}
	defer j.Close()
	if probs, err := j.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check: %v, %v", probs, err)
	}
}

// damageV1 makes run 3's last event of a schema 1 journal unreadable.
func damageV1(tb testing.TB, path string) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	key := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events")).Bucket(key(3))
		if b == nil || b.Get(key(3)) == nil {
			return fmt.Errorf("no run 3 event 3")
		}
		return b.Put(key(3), []byte(`{"run":3,"seq":3,`))
	}); err != nil {
		tb.Fatal(err)
	}
}
