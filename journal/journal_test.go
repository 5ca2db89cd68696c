package journal_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/journal"
)

// mustOpen opens (creating) a journal at path and registers a cleanup that
// checks its invariants, then closes it.
func mustOpen(tb testing.TB, path string) *journal.Journal {
	tb.Helper()
	j, err := journal.Open(path, journal.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		checkJournal(tb, j)
		if err := j.Close(); err != nil {
			tb.Errorf("close %s: %v", path, err)
		}
	})
	return j
}

// newJournal opens a fresh journal in a temporary directory.
func newJournal(tb testing.TB) *journal.Journal {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "journal.db"))
}

// checkJournal verifies what every journal must hold: the in-flight index
// is exactly the runs without an outcome; each run's events are numbered
// 1..Events, chain from one state to the next, end in the run's state and
// have non-decreasing times.
func checkJournal(tb testing.TB, j *journal.Journal) {
	tb.Helper()
	runs, err := j.Runs(0)
	if err != nil {
		tb.Errorf("check journal: runs: %v", err)
		return
	}
	inflight, err := j.InFlight("")
	if err != nil {
		tb.Errorf("check journal: in flight: %v", err)
		return
	}
	var want, got []uint64
	for _, r := range runs {
		if r.InFlight() {
			want = append(want, r.ID)
		}
	}
	for _, r := range inflight {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want) {
		tb.Errorf("check journal: in-flight index %v, runs without outcome %v", got, want)
	}
	for _, r := range runs {
		evs, err := j.Events(r.ID)
		if err != nil {
			tb.Errorf("check journal: events of run %d: %v", r.ID, err)
			continue
		}
		if uint64(len(evs)) != r.Events {
			tb.Errorf("check journal: run %d: %d events, record says %d", r.ID, len(evs), r.Events)
		}
		var state string
		var last time.Time
		for i, ev := range evs {
			if ev.Seq != uint64(i+1) || ev.Run != r.ID {
				tb.Errorf("check journal: run %d: event %d is run %d seq %d", r.ID, i+1, ev.Run, ev.Seq)
			}
			if i > 0 && ev.From != state {
				tb.Errorf("check journal: run %d event %d: from %q, previous event went to %q", r.ID, ev.Seq, ev.From, state)
			}
			if ev.Time.Before(last) {
				tb.Errorf("check journal: run %d event %d: time %s before %s", r.ID, ev.Seq, ev.Time, last)
			}
			state, last = ev.To, ev.Time
		}
		if len(evs) > 0 && state != r.State {
			tb.Errorf("check journal: run %d in state %q, last event went to %q", r.ID, r.State, state)
		}
	}
}

func begin(tb testing.TB, j *journal.Journal, target, state string) journal.Run {
	tb.Helper()
	r, err := j.Begin(journal.Run{Kind: "restore", Source: "/backup", Target: target, Mode: "copy", Engine: "pebble", State: state})
	if err != nil {
		tb.Fatalf("begin: %v", err)
	}
	return r
}

func mustAppend(tb testing.TB, j *journal.Journal, id uint64, from, event, to string, details any, outcome, errText string) {
	tb.Helper()
	if err := j.Append(id, from, event, to, details, outcome, errText); err != nil {
		tb.Fatalf("append run %d %s -%s-> %s: %v", id, from, event, to, err)
	}
}

func TestJournal_BeginAppendReadRoundTrip(t *testing.T) {
	j := newJournal(t)
	before := time.Now().UTC()
	r := begin(t, j, "/db", "new")
	if r.ID != 1 || r.State != "new" || r.Outcome != "" || r.Events != 0 || r.Start.Before(before.Add(-time.Second)) {
		t.Fatalf("Begin returned %+v", r)
	}
	if !r.InFlight() {
		t.Fatalf("a new run is not in flight: %+v", r)
	}

	mustAppend(t, j, r.ID, "new", "start", "precheck", nil, "", "")
	mustAppend(t, j, r.ID, "precheck", "note", "precheck", map[string]int{"files": 3}, "", "")
	mustAppend(t, j, r.ID, "precheck", "fail", "rollback", map[string]string{"error": "boom"}, "", "boom")
	mustAppend(t, j, r.ID, "rollback", "rolled_back", "failed", nil, "rolled_back", "")

	got, err := j.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.State, want.Outcome, want.Error, want.Events = "failed", "rolled_back", "boom", 4
	want.End = got.End
	evs0, err := j.Events(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want.FinalHash = evs0[len(evs0)-1].Hash // the chain ends at the last event
	if got.End.IsZero() || got.End.Before(got.Start) {
		t.Errorf("end time %s, start %s", got.End, got.Start)
	}
	if !got.Start.Equal(want.Start) {
		t.Errorf("start %s, want %s", got.Start, want.Start)
	}
	got.Start, want.Start = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("Run:\n got %+v\nwant %+v", got, want)
	}

	evs, err := j.Events(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	type edge struct{ from, event, to, details string }
	var edges []edge
	for _, ev := range evs {
		edges = append(edges, edge{ev.From, ev.Event, ev.To, string(ev.Details)})
	}
	wantEdges := []edge{
		{"new", "start", "precheck", ""},
		{"precheck", "note", "precheck", `{"files":3}`},
		{"precheck", "fail", "rollback", `{"error":"boom"}`},
		{"rollback", "rolled_back", "failed", ""},
	}
	if !slices.Equal(edges, wantEdges) {
		t.Errorf("Events:\n got %v\nwant %v", edges, wantEdges)
	}
	if evs[3].Time != got.End {
		t.Errorf("end %s is not the time of the ending event %s", got.End, evs[3].Time)
	}

	r2 := begin(t, j, "/other", "new")
	if r2.ID != 2 {
		t.Errorf("second run id %d, want 2", r2.ID)
	}
	runs, err := j.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != 1 || runs[1].ID != 2 {
		t.Errorf("Runs(0) = %+v, want runs 1 and 2, oldest first", runs)
	}
	last, err := j.Runs(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 1 || last[0].ID != 2 {
		t.Errorf("Runs(1) = %+v, want run 2", last)
	}
	inflight, err := j.InFlight("")
	if err != nil {
		t.Fatal(err)
	}
	if len(inflight) != 1 || inflight[0].ID != 2 || inflight[0].Target != "/other" {
		t.Errorf("InFlight = %+v, want run 2 only", inflight)
	}
}

func TestJournal_ReopenKeepsRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := begin(t, j, "/db", "new")
	mustAppend(t, j, r.ID, "new", "start", "precheck", nil, "", "")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	ro, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	got, err := ro.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "precheck" || got.Events != 1 || !got.InFlight() {
		t.Errorf("after reopen: %+v", got)
	}
}

func TestJournal_UnknownRunIsNotFound(t *testing.T) {
	j := newJournal(t)
	if _, err := j.Run(7); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Run(7) = %v, want ErrNotFound", err)
	}
	if _, err := j.Events(7); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Events(7) = %v, want ErrNotFound", err)
	}
	if err := j.Append(7, "new", "start", "precheck", nil, "", ""); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Append(7) = %v, want ErrNotFound", err)
	}
}

func TestJournal_AppendFromWrongStateConflictsAndChangesNothing(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, "/db", "new")
	mustAppend(t, j, r.ID, "new", "start", "precheck", nil, "", "")
	before, err := j.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	beforeEvs, err := j.Events(r.ID)
	if err != nil {
		t.Fatal(err)
	}

	// From the state before the current one, with an outcome and an error
	// text: none of it may land.
	err = j.Append(r.ID, "new", "start", "precheck", map[string]int{"x": 1}, "committed", "oops")
	if !errors.Is(err, journal.ErrConflict) {
		t.Fatalf("Append from wrong state = %v, want ErrConflict", err)
	}

	after, err := j.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("run changed by a refused Append:\nbefore %+v\n after %+v", before, after)
	}
	afterEvs, err := j.Events(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(afterEvs) != len(beforeEvs) {
		t.Errorf("refused Append added events: %d, was %d", len(afterEvs), len(beforeEvs))
	}
	inflight, err := j.InFlight("/db")
	if err != nil {
		t.Fatal(err)
	}
	if len(inflight) != 1 {
		t.Errorf("refused Append with an outcome took the run out of flight: %+v", inflight)
	}
	// The journal still takes the right transition.
	mustAppend(t, j, r.ID, "precheck", "checked", "clean", nil, "", "")
}

func TestJournal_AppendAfterOutcomeConflicts(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, "/db", "new")
	mustAppend(t, j, r.ID, "new", "start", "finish", nil, "", "")
	mustAppend(t, j, r.ID, "finish", "finished", "done", nil, "committed", "")

	// From the run's current (terminal) state: still refused, the run has
	// ended.
	err := j.Append(r.ID, "done", "note", "done", nil, "", "")
	if !errors.Is(err, journal.ErrConflict) {
		t.Fatalf("Append after the run ended = %v, want ErrConflict", err)
	}
	got, err := j.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Events != 2 || got.State != "done" || got.Outcome != "committed" {
		t.Errorf("ended run changed: %+v", got)
	}
}

func TestJournal_InFlightDropsRunWhenItEnds(t *testing.T) {
	j := newJournal(t)
	a := begin(t, j, "/a", "new")
	b := begin(t, j, "/b", "new")
	c := begin(t, j, "/a", "new")

	ids := func(target string) []uint64 {
		t.Helper()
		runs, err := j.InFlight(target)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, r := range runs {
			if !r.InFlight() {
				t.Errorf("InFlight returned ended run %+v", r)
			}
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(""); !slices.Equal(got, []uint64{a.ID, b.ID, c.ID}) {
		t.Errorf("InFlight(\"\") = %v", got)
	}
	if got := ids("/a"); !slices.Equal(got, []uint64{a.ID, c.ID}) {
		t.Errorf("InFlight(/a) = %v", got)
	}

	// A transition without an outcome keeps the run in flight.
	mustAppend(t, j, a.ID, "new", "start", "precheck", nil, "", "some error")
	if got := ids("/a"); !slices.Equal(got, []uint64{a.ID, c.ID}) {
		t.Errorf("after a non-terminal transition InFlight(/a) = %v", got)
	}
	mustAppend(t, j, a.ID, "precheck", "abort", "failed", nil, "rolled_back", "")
	if got := ids("/a"); !slices.Equal(got, []uint64{c.ID}) {
		t.Errorf("after run %d ended InFlight(/a) = %v, want [%d]", a.ID, got, c.ID)
	}
	if got := ids("/none"); len(got) != 0 {
		t.Errorf("InFlight(/none) = %v", got)
	}
}

func TestJournal_EventTimesNonDecreasing(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, "/db", "s0")
	for i := range 50 {
		from, to := "s"+strconv.Itoa(i), "s"+strconv.Itoa(i+1)
		mustAppend(t, j, r.ID, from, "next", to, nil, "", "")
	}
	evs, err := j.Events(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 50 {
		t.Fatalf("%d events, want 50", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) {
			t.Errorf("event %d at %s is before event %d at %s", evs[i].Seq, evs[i].Time, evs[i-1].Seq, evs[i-1].Time)
		}
	}
}

func TestJournal_DetailsThatDoNotEncodeAreRefused(t *testing.T) {
	j := newJournal(t)
	r := begin(t, j, "/db", "new")
	if err := j.Append(r.ID, "new", "start", "precheck", make(chan int), "", ""); err == nil {
		t.Fatal("Append with a channel as details succeeded")
	}
	got, err := j.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "new" || got.Events != 0 {
		t.Errorf("refused Append changed the run: %+v", got)
	}
}

func TestOpen_NewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	begin(t, j, "/db", "new")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	setSchema(t, path, strconv.Itoa(journal.SchemaVersion+1))
	before := readFile(t, path)

	for _, ro := range []bool{false, true} {
		j, err := journal.Open(path, journal.Options{ReadOnly: ro})
		if err == nil {
			j.Close()
			t.Fatalf("Open (read-only %v) of a schema %d journal succeeded", ro, journal.SchemaVersion+1)
		}
		if !errors.Is(err, journal.ErrNewerSchema) {
			t.Errorf("Open (read-only %v) = %v, want ErrNewerSchema", ro, err)
		}
	}
	if after := readFile(t, path); string(after) != string(before) {
		t.Error("refusing a newer journal rewrote it")
	}
}

func TestOpen_BadSchemaValueIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	setSchema(t, path, "one")
	if j, err := journal.Open(path, journal.Options{}); !errors.Is(err, journal.ErrCorrupt) {
		if err == nil {
			j.Close()
		}
		t.Errorf("Open of a journal with schema %q = %v, want ErrCorrupt", "one", err)
	}
}

func TestOpen_BoltFileWithoutJournalBucketsIsCorrupt(t *testing.T) {
	// A bbolt file that has runs but no meta is someone else's, or damaged:
	// Open must not take it over.
	path := filepath.Join(t.TempDir(), "journal.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("runs"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if j, err := journal.Open(path, journal.Options{}); !errors.Is(err, journal.ErrCorrupt) {
		if err == nil {
			j.Close()
		}
		t.Errorf("Open of a bbolt file with runs and no meta = %v, want ErrCorrupt", err)
	}
}

// setSchema rewrites the journal's schema version with bbolt directly.
func setSchema(tb testing.TB, path, v string) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("no meta bucket")
		}
		return meta.Put([]byte("schema"), []byte(v))
	}); err != nil {
		tb.Fatal(err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestOpen_SecondOpenWhileOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	first := mustOpen(t, path)
	begin(t, first, "/db", "new")

	type result struct {
		j   *journal.Journal
		err error
	}
	for _, ro := range []bool{false, true} {
		done := make(chan result, 1)
		go func() {
			j, err := journal.Open(path, journal.Options{Timeout: 100 * time.Millisecond, ReadOnly: ro})
			done <- result{j, err}
		}()
		select {
		case res := <-done:
			if res.err == nil {
				res.j.Close()
				t.Fatalf("second Open (read-only %v) succeeded while the journal was open for writing", ro)
			}
			if !errors.Is(res.err, journal.ErrLocked) {
				t.Errorf("second Open (read-only %v) = %v, want ErrLocked", ro, res.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("second Open (read-only %v) with a 100ms timeout still waiting after 5s", ro)
		}
	}
	// The first holder is unaffected.
	begin(t, first, "/db", "new")
}

func TestOpen_LockIsReleasedOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	first, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := mustOpen(t, path)
	begin(t, second, "/db", "new")
}

// openWithDeadline opens path and fails the test if Open does not return
// within a generous deadline (a damaged file must not hang it).
func openWithDeadline(tb testing.TB, path string, opts journal.Options) error {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		j, err := journal.Open(path, opts)
		if err == nil {
			j.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatalf("Open %s did not return within 5s", path)
		return nil
	}
}

func TestOpen_RandomBytesAreCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{100, 4096, 16384, 65536} {
		for seed := range 3 {
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			path := filepath.Join(t.TempDir(), "journal.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				err := openWithDeadline(t, path, journal.Options{Timeout: 100 * time.Millisecond, ReadOnly: ro})
				if !errors.Is(err, journal.ErrCorrupt) {
					t.Errorf("Open (read-only %v) of %d random bytes (#%d) = %v, want ErrCorrupt", ro, size, seed, err)
				}
			}
		}
	}
}

// validJournal writes a journal with a few runs and events and returns its
// path.
func validJournal(tb testing.TB, runs int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	pad := map[string]string{"pad": string(make([]byte, 512))}
	for range runs {
		r := begin(tb, j, "/db", "new")
		mustAppend(tb, j, r.ID, "new", "start", "precheck", pad, "", "")
		mustAppend(tb, j, r.ID, "precheck", "note", "precheck", pad, "", "")
		mustAppend(tb, j, r.ID, "precheck", "fail", "failed", pad, "rolled_back", "x")
	}
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// highWater returns the journal's used size: bbolt's high-water page mark
// times the page size. The file beyond it is preallocated space.
func highWater(tb testing.TB, path string) int64 {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return size
}

func TestOpen_TruncatedJournalIsCorrupt(t *testing.T) {
	path := validJournal(t, 40)
	used := highWater(t, path)
	if used < 8*4096 {
		t.Fatalf("journal uses only %d bytes; the test wants one of several pages", used)
	}
	if err := os.Truncate(path, used/2); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		// Only Open is called: if it wrongly succeeds, reading would kill
		// the test binary.
		err := openWithDeadline(t, path, journal.Options{Timeout: 100 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, journal.ErrCorrupt) {
			t.Errorf("Open (read-only %v) of a journal truncated from %d used bytes to %d = %v, want ErrCorrupt", ro, used, used/2, err)
		}
	}
}

func TestOpen_TruncatingUnusedTailLosesNothing(t *testing.T) {
	// bbolt grows the file ahead of use; cutting the file back to its
	// high-water mark removes only unused space: every record still reads
	// back and the journal still takes writes.
	path := validJournal(t, 40)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	used := highWater(t, path)
	if used >= fi.Size() {
		t.Fatalf("journal uses all of its %d bytes; the test wants a preallocated tail", fi.Size())
	}
	if err := os.Truncate(path, used); err != nil {
		t.Fatal(err)
	}
	j := mustOpen(t, path) // its cleanup reads every run and event
	runs, err := j.Runs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 40 {
		t.Errorf("%d runs after cutting the unused tail, want 40", len(runs))
	}
	for range 40 {
		r := begin(t, j, "/db", "new")
		mustAppend(t, j, r.ID, "new", "start", "precheck", map[string]string{"pad": string(make([]byte, 512))}, "", "")
	}
}

func TestOpen_EmptyFileReadOnlyIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := openWithDeadline(t, path, journal.Options{Timeout: 100 * time.Millisecond, ReadOnly: true})
	if !errors.Is(err, journal.ErrCorrupt) {
		t.Errorf("read-only Open of an empty file = %v, want ErrCorrupt", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("read-only Open changed the empty file: %v, %v", fi, err)
	}
}

func TestOpen_EmptyFileForWritingIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := openWithDeadline(t, path, journal.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, journal.ErrCorrupt) {
		t.Errorf("Open of an empty file = %v, want ErrCorrupt", err)
	}
}

func TestOpen_ReadOnlyMissingFileErrorsAndCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err == nil {
		j.Close()
		t.Fatal("read-only Open of a missing journal succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only Open of a missing journal = %v, want fs.ErrNotExist", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("read-only Open left %v in the directory", entries)
	}
}

func TestRun_JSONFieldsAreStable(t *testing.T) {
	// Status --json prints runs; the field names are a contract.
	b, err := json.Marshal(journal.Run{ID: 3, Kind: "restore", Target: "/db", State: "new", Events: 1})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":3,"kind":"restore","target":"/db","start":"0001-01-01T00:00:00Z","state":"new","events":1,"prev_run":"","first_hash":"","final_hash":""}`
	if string(b) != want {
		t.Errorf("Run JSON:\n got %s\nwant %s", b, want)
	}
}

func BenchmarkAppend(b *testing.B) {
	j := newJournal(b)
	r := begin(b, j, "/db", "a")
	states := [2]string{"a", "b"}
	for i := 0; b.Loop(); i++ {
		from, to := states[i%2], states[(i+1)%2]
		if err := j.Append(r.ID, from, "next", to, nil, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInFlightOver10kRuns(b *testing.B) {
	j := newJournal(b)
	for range 10_000 {
		r, err := j.Begin(journal.Run{Kind: "restore", Target: "/db", State: "new"})
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Append(r.ID, "new", "abort", "failed", nil, "rolled_back", ""); err != nil {
			b.Fatal(err)
		}
	}
	live := begin(b, j, "/db", "new")
	for b.Loop() {
		runs, err := j.InFlight("/db")
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) != 1 || runs[0].ID != live.ID {
			b.Fatalf("InFlight = %+v, want run %d only", runs, live.ID)
		}
	}
}
