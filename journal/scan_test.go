package journal_test

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/journal"
)

// TestScan_EveryRunFromFirstWithTheEventsAsked: Scan walks the runs from
// the id given, in order, with the events of the runs the predicate picks
// (the same as Events returns) and of no other; an error of fn stops it.
func TestScan_EveryRunFromFirstWithTheEventsAsked(t *testing.T) {
	j := newJournal(t)
	for range 260 { // more than the walk's release interval
		r := begin(t, j, "/db", "new")
		mustAppend(t, j, r.ID, "new", "abort", "rollback", map[string]string{"error": "no"}, "", "")
		mustAppend(t, j, r.ID, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
	}
	live := inFlightRun(t, j)
	var ids []uint64
	err := j.Scan(2, func(r *journal.Run) bool { return r.ID%2 == 0 }, func(r journal.Run, evs []journal.Event) error {
		ids = append(ids, r.ID)
		if r.ID%2 != 0 {
			if evs != nil {
				t.Errorf("run %d: events read though not asked for", r.ID)
			}
			return nil
		}
		want, err := j.Events(r.ID)
		if err != nil {
			return err
		}
		if len(evs) != len(want) || len(evs) == 0 || evs[len(evs)-1].Hash != want[len(want)-1].Hash {
			t.Errorf("run %d: Scan gave %d events, Events %d", r.ID, len(evs), len(want))
		}
		return nil
	})
	if err != nil || len(ids) != int(live)-1 || ids[0] != 2 || ids[len(ids)-1] != live {
		t.Fatalf("Scan from 2 walked %d runs (%v…), err %v; want 2..%d", len(ids), ids[:min(3, len(ids))], err, live)
	}
	stop := errors.New("stop")
	n := 0
	if err := j.Scan(0, journal.AllEvents, func(journal.Run, []journal.Event) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Scan with fn failing: %v after %d runs, want stop after 1", err, n)
	}
}

// TestCheckEach_HandsOverEachRunWholeOrNot: CheckEach calls fn with every
// run, its events decoded by the check when the run checked, and whole
// false without events for a run the check found wrong.
func TestCheckEach_HandsOverEachRunWholeOrNot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		endedRun(t, j)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	key := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	editBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("events")).Bucket(key(2)).Delete(key(3)) })

	j, err = journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var whole []bool
	probs, err := j.CheckEach(func(r journal.Run, evs []journal.Event, ok bool) {
		whole = append(whole, ok)
		if ok != (len(evs) == 7) || !ok && evs != nil {
			t.Errorf("run %d: whole %v with %d events", r.ID, ok, len(evs))
		}
	})
	if err != nil || !slices.Equal(whole, []bool{true, false, true}) || len(probs) == 0 || probs[0].Run != 2 {
		t.Errorf("CheckEach: whole %v, problems %v, %v; want run 2 alone broken", whole, probs, err)
	}
	plain, err := j.Check()
	if err != nil || !slices.Equal(plain, probs) {
		t.Errorf("Check = %v, %v; CheckEach found %v", plain, err, probs)
	}
}
