package journal_test

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
)

// endedRun journals a whole committed restore and returns its id.
func endedRun(tb testing.TB, j *journal.Journal) uint64 {
	tb.Helper()
	r := begin(tb, j, "/db", "new")
	path := [][3]string{{"new", "start", "precheck"}, {"precheck", "checked", "clean"}, {"clean", "cleaned", "write"},
		{"write", "written", "verify"}, {"verify", "verified", "commit"}, {"commit", "committed", "finish"}, {"finish", "finished", "done"}}
	for i, tr := range path {
		outcome := ""
		if i == len(path)-1 {
			outcome = "committed"
		}
		mustAppend(tb, j, r.ID, tr[0], tr[1], tr[2], map[string]int{"files": i}, outcome, "")
	}
	return r.ID
}

// inFlightRun journals a restore left in write and returns its id.
func inFlightRun(tb testing.TB, j *journal.Journal) uint64 {
	tb.Helper()
	r := begin(tb, j, "/db", "new")
	mustAppend(tb, j, r.ID, "new", "start", "precheck", nil, "", "")
	mustAppend(tb, j, r.ID, "precheck", "checked", "clean", nil, "", "")
	mustAppend(tb, j, r.ID, "clean", "cleaned", "write", nil, "", "")
	return r.ID
}

// mustCheck fails the test unless Check finds no problem.
func mustCheck(tb testing.TB, j *journal.Journal) {
	tb.Helper()
	probs, err := j.Check()
	if err != nil || len(probs) > 0 {
		tb.Fatalf("Check: %v, %v", probs, err)
	}
}

func runIDs(tb testing.TB, j *journal.Journal) []uint64 {
	tb.Helper()
	runs, err := j.Runs(0)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []uint64
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestCheck_RunsChainFromGenesisAndEventsFromTheirBegin(t *testing.T) {
	j := newJournal(t)
	mustCheck(t, j) // empty
	a, b := endedRun(t, j), inFlightRun(t, j)
	mustCheck(t, j)
	ra, _ := j.Run(a)
	rb, _ := j.Run(b)
	if ra.PrevRun != journal.Genesis || rb.PrevRun != ra.FirstHash || ra.FirstHash == "" {
		t.Errorf("run links: a.prev_run %s, b.prev_run %s, a.first_hash %s", ra.PrevRun, rb.PrevRun, ra.FirstHash)
	}
	evs, _ := j.Events(b)
	if evs[0].Prev != rb.FirstHash || evs[2].Hash != rb.FinalHash {
		t.Errorf("run b: first event links to %s (begin %s), last hash %s (final %s)", evs[0].Prev, rb.FirstHash, evs[2].Hash, rb.FinalHash)
	}
}

// TestCheck_RunsCutOffTheEndAreAProblem: removing the last runs whole
// leaves every remaining link intact; the journal's head still names the
// last run begun, and Check reports the run before the gap.
func TestCheck_RunsCutOffTheEndAreAProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	endedRun(t, j)
	endedRun(t, j)
	last := endedRun(t, j)
	j.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := binary.BigEndian.AppendUint64(nil, last)
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"runs", "begins"} {
			if err := tx.Bucket([]byte(b)).Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("events")).DeleteBucket(k)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	j, err = journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	probs, err := j.Check()
	if err != nil || len(probs) != 1 || probs[0].Run != last-1 || probs[0].Seq != 0 || !strings.Contains(probs[0].What, "head") {
		t.Errorf("Check after the last run was cut off: %v, %v; want one problem at run %d", probs, err, last-1)
	}
}

func TestPrune_KeepRemovesAPrefixAndRecordsTheAnchor(t *testing.T) {
	j := newJournal(t)
	for range 3 {
		endedRun(t, j)
	}
	r3, _ := j.Run(3)
	removed, err := j.Prune(1, time.Time{})
	if err != nil || !slices.Equal(removed, []uint64{1, 2}) {
		t.Fatalf("Prune(keep 1) = %v, %v; want runs 1, 2", removed, err)
	}
	if ids := runIDs(t, j); !slices.Equal(ids, []uint64{3}) {
		t.Fatalf("runs after prune %v, want [3]", ids)
	}
	mustCheck(t, j)
	if _, err := j.Events(1); err == nil {
		t.Error("run 1's events are still readable")
	}
	// A new run chains on; the remaining chain still starts from run 3's
	// prev_run, the anchor.
	next := endedRun(t, j)
	mustCheck(t, j)
	rn, _ := j.Run(next)
	if rn.PrevRun != r3.FirstHash || next != 4 {
		t.Errorf("run %d after prune links to %s, want run 3's begin %s", next, rn.PrevRun, r3.FirstHash)
	}
	// Pruning again moves the anchor.
	if removed, err := j.Prune(1, time.Time{}); err != nil || !slices.Equal(removed, []uint64{3}) {
		t.Fatalf("second Prune(keep 1) = %v, %v; want run 3", removed, err)
	}
	mustCheck(t, j)
}

func TestPrune_InFlightRunIsKeptAndStopsThePrefix(t *testing.T) {
	j := newJournal(t)
	endedRun(t, j)
	live := inFlightRun(t, j)
	endedRun(t, j)
	endedRun(t, j)
	for _, tc := range []struct {
		keep   int
		before time.Time
	}{{1, time.Time{}}, {0, time.Now().Add(time.Hour)}} {
		removed, err := j.Prune(tc.keep, tc.before)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(removed, live) || slices.Contains(removed, 3) {
			t.Errorf("Prune(%d, %v) removed %v: past the run in flight", tc.keep, tc.before, removed)
		}
		mustCheck(t, j)
	}
	if ids := runIDs(t, j); !slices.Equal(ids, []uint64{live, 3, 4}) {
		t.Errorf("runs %v, want [%d 3 4]", ids, live)
	}
	// Once it ends it can go.
	mustAppend(t, j, live, "write", "abort", "rollback", nil, "", "")
	mustAppend(t, j, live, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
	if removed, err := j.Prune(1, time.Time{}); err != nil || !slices.Equal(removed, []uint64{live, 3}) {
		t.Errorf("Prune(keep 1) after the run ended = %v, %v; want [%d 3]", removed, err, live)
	}
	mustCheck(t, j)
}

func TestPrune_OlderThanRemovesRunsEndedBefore(t *testing.T) {
	j := newJournal(t)
	endedRun(t, j)
	endedRun(t, j)
	r2, _ := j.Run(2)
	time.Sleep(2 * time.Millisecond)
	endedRun(t, j)
	removed, err := j.Prune(0, r2.End.Add(time.Nanosecond))
	if err != nil || !slices.Equal(removed, []uint64{1, 2}) {
		t.Fatalf("Prune(before run 2's end) = %v, %v; want [1 2]", removed, err)
	}
	mustCheck(t, j)
	// Everything: the journal is empty and still checks, and a new run
	// chains from the anchor.
	if removed, err := j.Prune(0, time.Now().Add(time.Hour)); err != nil || !slices.Equal(removed, []uint64{3}) {
		t.Fatalf("Prune(everything) = %v, %v", removed, err)
	}
	mustCheck(t, j)
	endedRun(t, j)
	mustCheck(t, j)
	if _, err := j.Prune(0, time.Time{}); err == nil {
		t.Error("Prune with nothing selecting runs did not fail")
	}
}

// TestPrune_FaultBeforeCommitRemovesNothing: Prune is one transaction.
func TestPrune_FaultBeforeCommitRemovesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	faults, err := fault.Parse("journal.before-commit:eio@4")
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(path, journal.Options{Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	r := begin(t, j, "/db", "new") // commit 1 (creating the journal took none)
	mustAppend(t, j, r.ID, "new", "abort", "rollback", nil, "", "")
	mustAppend(t, j, r.ID, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
	if removed, err := j.Prune(0, time.Now().Add(time.Hour)); err == nil {
		t.Fatalf("Prune at the fault = %v, nil error", removed)
	}
	if ids := runIDs(t, j); !slices.Equal(ids, []uint64{1}) {
		t.Errorf("runs after a failed prune %v, want [1]", ids)
	}
	mustCheck(t, j)
}
