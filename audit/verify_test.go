package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// The runs auditJournal records, by id.
const (
	auditCommitted  = 1 // restore, committed
	auditCommitted2 = 2 // restore again, committed
	auditRolledBack = 3 // step write fails (EIO): rolled back
	auditInFlight   = 4 // killed at restore.verify.begin: in flight
)

// auditJournal records real restores of a Pebble fixture (on a MemFS; the
// journal on disk) and returns the journal's path: runs committed, rolled
// back and left in flight, as the auditXxx constants say.
func auditJournal(t *testing.T) string {
	t.Helper()
	f := newFixture(t, vfs.NewMem(), "/a")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	for range 2 {
		if _, err := kvrflow.Restore(context.Background(), f.opts()); err != nil {
			t.Fatal(err)
		}
	}
	opts := f.opts()
	opts.FaultSpec = "restore.write.begin:eio"
	if _, err := kvrflow.Restore(context.Background(), opts); !kvrflow.IsRolledBack(err) {
		t.Fatalf("restore with EIO at restore.write.begin = %v, want rolled back", err)
	}
	crashAt(t, f.opts(), "restore.verify.begin")
	return f.journal
}

func TestVerify_RecordedRestoresVerifyWithInFlightListed(t *testing.T) {
	path := auditJournal(t)
	rep, err := audit.Verify(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Runs != 4 || !slices.Equal(rep.InFlight, []uint64{auditInFlight}) {
		t.Fatalf("Verify = %+v, want 4 runs, run %d in flight, no problem", rep, auditInFlight)
	}
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	want := 0
	for id := uint64(1); id <= 4; id++ {
		evs, err := j.Events(id)
		must(t, err)
		want += len(evs)
	}
	if rep.Events != want {
		t.Errorf("Verify checked %d events, the journal holds %d", rep.Events, want)
	}
}

// TestVerify_IllegalTransitionIsNamed: a journal whose chain is
// intact but whose events break the workflow (written with the journal's
// own API, which checks only that each event starts where the last ended)
// fails the replay at the first illegal event.
func TestVerify_IllegalTransitionIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	must(t, err)
	good, err := j.Begin(journal.Run{Kind: "restore", Target: "/db", State: steps.StateNew})
	must(t, err)
	appendPath(t, j, good.ID, restorePath)
	bad, err := j.Begin(journal.Run{Kind: "restore", Target: "/db", State: steps.StateNew})
	must(t, err)
	must(t, j.Append(bad.ID, "new", "start", "precheck", nil, "", ""))
	must(t, j.Append(bad.ID, "precheck", "committed", "done", nil, steps.OutcomeCommitted, "")) // skips the copy
	must(t, j.Close())

	rep, err := audit.Verify(path, nil)
	must(t, err)
	if len(rep.Problems) != 1 || rep.Problems[0].Run != bad.ID || rep.Problems[0].Seq != 2 {
		t.Fatalf("problems %v, want one: run %d event 2", rep.Problems, bad.ID)
	}
	if !strings.Contains(rep.Problems[0].What, "not a transition") {
		t.Errorf("problem %q does not say the transition is illegal", rep.Problems[0].What)
	}
}

// TestVerify_RunOfUnknownKindIsAProblem: each run is replayed through the
// workflow of its kind; a run of a kind the Workflows lack is reported as
// a problem naming it, the other runs still verified, and Replay refuses
// it with ErrUnknownKind.
func TestVerify_RunOfUnknownKindIsAProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	must(t, err)
	for _, kind := range []string{"restore", "frobnicate", "restore"} {
		r, err := j.Begin(journal.Run{Kind: kind, Target: "/db", State: steps.StateNew})
		must(t, err)
		appendPath(t, j, r.ID, restorePath)
	}
	must(t, j.Close())

	rep, err := audit.Verify(path, nil)
	must(t, err)
	if rep.Runs != 3 || len(rep.Problems) != 1 || rep.Problems[0].Run != 2 || !strings.Contains(rep.Problems[0].What, `kind "frobnicate"`) {
		t.Errorf("Verify = %+v, want one problem: run 2 of kind frobnicate", rep)
	}
	if rep.Events != 3*len(restorePath) {
		t.Errorf("Verify replayed %d events, want %d", rep.Events, 3*len(restorePath))
	}
	// Given a workflow for the kind (here the restore one), it verifies.
	rep, err = audit.Verify(path, audit.Workflows{"restore": steps.Restore, "frobnicate": steps.Restore})
	if err != nil || !rep.OK() {
		t.Errorf("Verify with a frobnicate workflow = %+v, %v", rep, err)
	}
	if _, err := audit.Replay(path, 2, nil); !errors.Is(err, audit.ErrUnknownKind) {
		t.Errorf("Replay of the frobnicate run = %v, want ErrUnknownKind", err)
	}
	if _, err := audit.Replay(path, 9, nil); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Replay of run 9 = %v, want ErrNotFound", err)
	}
	if _, err := audit.Graph(steps.Restore, "svg", nil); !errors.Is(err, audit.ErrFormat) {
		t.Errorf("Graph as svg = %v, want ErrFormat", err)
	}
}

// restorePath is the forward path of a committed restore: from, event, to.
var restorePath = [][3]string{
	{"new", "start", "precheck"}, {"precheck", "checked", "clean"}, {"clean", "cleaned", "write"},
	{"write", "written", "verify"}, {"verify", "verified", "commit"}, {"commit", "committed", "finish"},
	{"finish", "finished", "done"},
}

// appendPath journals the transitions of path for run id, the last with
// the outcome of the state it reaches.
func appendPath(tb testing.TB, j *journal.Journal, id uint64, path [][3]string) {
	tb.Helper()
	for i, tr := range path {
		outcome := ""
		if i == len(path)-1 {
			outcome, _ = steps.Restore.IsTerminal(tr[2])
		}
		if err := j.Append(id, tr[0], tr[1], tr[2], map[string]int{"files": i}, outcome, ""); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestReplay_DecisionAtEveryPointIsWhatRecoveryDoes records a committed
// restore and a rolled-back one, and replays each. Then, for every point
// of each run, a fresh restore is crashed right there (a crash that panics
// out of the restore, as kill -9 would end it) and kvrflow.Recover run:
// the decision recovery reports must be the one the replay shows at that
// point. The points are every journal commit (journal.after-commit@N for
// N = 1, 2, ... until the restore runs through: the run's begin record and
// each of its events), and every step's begin point (step.STATE.begin: the
// state journaled, its step not yet run), compared with the record that
// led into that state.
func TestReplay_DecisionAtEveryPointIsWhatRecoveryDoes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults string // of the recorded run, and of every crashed one
	}{
		{"committed", ""},
		{"rolled back", "restore.write.begin:eio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newFixture(t, vfs.NewMem(), "/rec")
			rec.journal = filepath.Join(t.TempDir(), "journal.db")
			opts := rec.opts()
			opts.FaultSpec = tc.faults
			res, _ := kvrflow.Restore(context.Background(), opts)
			if res == nil || res.Run.InFlight() {
				t.Fatalf("recorded run did not end: %+v", res)
			}
			tl, err := audit.Replay(rec.journal, res.Run.ID, nil)
			must(t, err)
			// replayAt returns the state and the replay's decision after
			// the run's first k records.
			replayAt := func(k uint64) (state, decision string) {
				if k == 0 {
					return steps.StateNew, tl.IfCrashedAtStart
				}
				return tl.Steps[k-1].To, tl.Steps[k-1].IfCrashed
			}

			covered := map[uint64]bool{}
			for n := 1; ; n++ {
				r, got, ok := crashAndRecover(t, tc.faults, fmt.Sprintf("journal.after-commit:crash@%d", n))
				if !ok {
					break
				}
				state, want := replayAt(r.Events)
				if r.State != state || got != want {
					t.Errorf("crash after journal commit %d (run in %s after %d records): recovery %q; replay: in %s, %q",
						n, r.State, r.Events, got, state, want)
				}
				t.Logf("crash after record %d, in %-9s recovery %-9s replay %s", r.Events, r.State, got, want)
				covered[r.Events] = true
			}
			for k := range uint64(len(tl.Steps) + 1) {
				if !covered[k] {
					t.Errorf("no crash landed right after record %d", k)
				}
			}

			begins := 0
			for _, s := range tl.Steps {
				point := "restore." + s.To + ".begin"
				if _, terminal := steps.Restore.IsTerminal(s.To); terminal || s.Event == fsm.NoteEvent || strings.Contains(tc.faults, point) {
					continue
				}
				r, got, ok := crashAndRecover(t, tc.faults, point+":crash")
				switch {
				case !ok:
					t.Errorf("restore did not reach %s", point)
				case r.Events != s.Seq || got != s.IfCrashed:
					t.Errorf("crash at %s: run in %s after %d records, recovery %q; replay after record %d (%s): %q",
						point, r.State, r.Events, got, s.Seq, s.To, s.IfCrashed)
				}
				t.Logf("crash at %-24s recovery %-9s replay %s", point, got, s.IfCrashed)
				begins++
			}
			if begins < 2 {
				t.Errorf("only %d step begin points tried", begins)
			}
		})
	}
}

// crashAndRecover runs a restore of a fresh fixture with faults and crash
// (a crash spec), then kvrflow.Recover. It returns run 1 as the crash left
// it and recovery's decision for it ("nothing" if recovery found nothing
// in flight); ok is false if nothing crashed. After recovery the journal
// must verify with nothing in flight.
func crashAndRecover(t *testing.T, faults, crash string) (crashed journal.Run, decision string, ok bool) {
	t.Helper()
	f := newFixture(t, vfs.NewMem(), "/c")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	spec := crash
	if faults != "" {
		spec = faults + "," + crash
	}
	if !restoreCrashes(t, f.opts(), spec) {
		return crashed, "", false
	}
	j, err := journal.Open(f.journal, journal.Options{ReadOnly: true})
	must(t, err)
	crashed, err = j.Run(1)
	j.Close()
	must(t, err)
	recovered, err := kvrflow.Recover(context.Background(), f.opts())
	must(t, err)
	decision = fsm.Nothing.String()
	if len(recovered) > 0 {
		if len(recovered) != 1 || recovered[0].Run.ID != 1 || recovered[0].FromState != crashed.State {
			t.Fatalf("%s: recovered %+v, want run 1 from %s", crash, recovered, crashed.State)
		}
		decision = recovered[0].Decision
	}
	rep, err := audit.Verify(f.journal, nil)
	must(t, err)
	if !rep.OK() || len(rep.InFlight) != 0 {
		t.Errorf("%s: after recovery Verify = %+v", crash, rep)
	}
	return crashed, decision, true
}

// restoreCrashes runs a restore with the fault spec, whose crash action
// stops the restore dead, as a kill would (it unwinds the goroutine with
// no journal write). It reports whether the restore crashed.
func restoreCrashes(t *testing.T, opts kvrflow.Options, spec string) (crashedOut bool) {
	t.Helper()
	fs, err := fault.Parse(spec)
	must(t, err)
	opts.Faults = fs.SetCrash(func(p string) { panic(crashed{p}) })
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashed); !ok {
				panic(r)
			}
			crashedOut = true
		}
	}()
	_, _ = kvrflow.Restore(context.Background(), opts)
	return false
}

func TestGraph_DotMarksThePathAndVisitedStates(t *testing.T) {
	path := auditJournal(t)
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	for _, id := range []uint64{auditCommitted, auditRolledBack, auditInFlight} {
		evs, err := j.Events(id)
		must(t, err)
		out, err := audit.Graph(steps.Restore, "dot", evs)
		must(t, err)
		taken, visited := runPath(evs)
		for _, tr := range steps.Restore.Transitions {
			for _, from := range tr.From {
				line := findLine(out, fmt.Sprintf("%q -> %q [ label = %q", from, tr.To, tr.Event))
				if line == "" {
					t.Fatalf("run %d: dot has no edge %s -%s-> %s:\n%s", id, from, tr.Event, tr.To, out)
				}
				if marked := strings.Contains(line, `color = "blue"`); marked != taken[from+" "+tr.Event] {
					t.Errorf("run %d: edge %s -%s-> %s marked %v, taken %v: %s", id, from, tr.Event, tr.To, marked, !marked, line)
				}
			}
		}
		for _, s := range steps.Restore.States() {
			filled := findLine(out, fmt.Sprintf("%q [style = filled", s)) != ""
			if filled != visited[s] {
				t.Errorf("run %d: state %s filled %v, visited %v", id, s, filled, visited[s])
			}
		}
	}
	bare, err := audit.Graph(steps.Restore, "dot", nil)
	must(t, err)
	if strings.Contains(bare, "blue") || strings.Contains(bare, "filled") {
		t.Errorf("the bare machine has a path marked:\n%s", bare)
	}
}

func TestGraph_MermaidClassesExactlyTheVisitedStates(t *testing.T) {
	path := auditJournal(t)
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	for _, id := range []uint64{auditCommitted, auditRolledBack, auditInFlight} {
		evs, err := j.Events(id)
		must(t, err)
		out, err := audit.Graph(steps.Restore, "mermaid", evs)
		must(t, err)
		if !strings.HasPrefix(out, "stateDiagram-v2\n    [*] --> new\n") {
			t.Errorf("run %d: the diagram does not start from new:\n%s", id, out)
		}
		if findLine(out, "classDef visited ") == "" {
			t.Errorf("run %d: no classDef visited:\n%s", id, out)
		}
		class := findLine(out, "class ")
		fields := strings.Fields(class)
		if len(fields) != 3 || fields[2] != "visited" {
			t.Fatalf("run %d: class line %q", id, class)
		}
		_, visited := runPath(evs)
		var want []string
		for s := range visited {
			want = append(want, s)
		}
		slices.Sort(want)
		if got := strings.Split(fields[1], ","); !slices.Equal(got, want) {
			t.Errorf("run %d: class visited lists %v, the run visited %v", id, got, want)
		}
	}
	bare, err := audit.Graph(steps.Restore, "mermaid", nil)
	must(t, err)
	if strings.Contains(bare, "class") {
		t.Errorf("the bare machine has classes:\n%s", bare)
	}
	if _, err := audit.Graph(steps.Restore, "svg", nil); err == nil {
		t.Error("Graph(svg) did not fail")
	}
}

// runPath returns the transitions a run took ("from event") and the
// states it visited, its start state included.
func runPath(evs []journal.Event) (taken, visited map[string]bool) {
	taken, visited = map[string]bool{}, map[string]bool{steps.Restore.Start: true}
	for _, ev := range evs {
		if ev.Event != fsm.NoteEvent {
			taken[ev.From+" "+ev.Event] = true
		}
		visited[ev.To] = true
	}
	return taken, visited
}

// findLine returns the first line of out that, trimmed, starts with
// prefix, or "".
func findLine(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), prefix) {
			return line
		}
	}
	return ""
}
