package fsm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/steps"
)

// memStore is an in-memory fsm.Store: it keeps each run's state and
// outcome, refuses a transition that does not start from the current state
// or comes after the run ended (as the journal does), and records every
// transition it accepts.
type memStore struct {
	state   map[uint64]string
	outcome map[uint64]string
	log     []string
	// failOn, if set, is asked before each transition; an error refuses
	// it, as a journal write error would.
	failOn func(from, event, to string) error
}

var _ fsm.Store = (*memStore)(nil)

// newStore returns a store holding run id in state (ended, if the state
// is terminal in def).
func newStore(def *fsm.Definition, id uint64, state string) *memStore {
	s := &memStore{state: map[uint64]string{id: state}, outcome: map[uint64]string{}}
	if out, end := def.IsTerminal(state); end {
		s.outcome[id] = out
	}
	return s
}

func (s *memStore) Append(run uint64, from, event, to string, details any, outcome, errText string) error {
	cur, ok := s.state[run]
	if !ok {
		return fmt.Errorf("run %d: no such run", run)
	}
	if s.outcome[run] != "" || cur != from {
		return fmt.Errorf("run %d in %s (outcome %q): %s -%s-> %s: conflict", run, cur, s.outcome[run], from, event, to)
	}
	if s.failOn != nil {
		if err := s.failOn(from, event, to); err != nil {
			return err
		}
	}
	line := from + " -" + event + "-> " + to
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return err
		}
		line += " " + string(b)
	}
	if outcome != "" {
		line += " outcome=" + outcome
	}
	if errText != "" {
		line += fmt.Sprintf(" error=%q", errText)
	}
	s.log = append(s.log, line)
	s.state[run] = to
	if outcome != "" {
		s.outcome[run] = outcome
	}
	return nil
}

// errStep is what a fake step told to fail returns.
var errStep = errors.New("injected step failure")

// fakeSteps returns a step for every state of def with a forward event
// (but its start). Each appends its state to *ran; those in fail fail with
// errStep; the one in note journals a note first.
func fakeSteps(def *fsm.Definition, ran *[]string, fail []string, note string) map[string]fsm.Step {
	out := map[string]fsm.Step{}
	for state := range def.Forward {
		if state == def.Start {
			continue
		}
		out[state] = func(ctx context.Context, r *fsm.Run) (any, error) {
			*ran = append(*ran, state)
			if state == note {
				if err := r.Note(map[string]string{"plan": "swap"}); err != nil {
					return nil, err
				}
			}
			if slices.Contains(fail, state) {
				return map[string]string{"partial": state}, errStep
			}
			return nil, nil
		}
	}
	return out
}

// crashed is the panic a fault point's crash action raises in these tests,
// standing in for the process dying there.
type crashed struct{ point string }

// ddState is what the commands of one datadriven file share: the store
// and run of the last run command, for recover to pick up.
type ddState struct {
	def   *fsm.Definition
	store *memStore
	state string
}

const runID = 1

func TestMain(m *testing.M) {
	// Idempotent steps are tried fsm.Attempts times; do not sleep between.
	fsm.RetryPause = time.Microsecond
	os.Exit(m.Run())
}

func TestDatadriven(t *testing.T) {
	datadriven.Walk(t, "../testdata/fsm", func(t *testing.T, path string) {
		st := &ddState{def: steps.Restore}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return st.do(t, td)
		})
	})
}

func (st *ddState) do(t *testing.T, td *datadriven.TestData) string {
	switch td.Cmd {
	case "define":
		return describe(st.def)

	case "decide":
		var state string
		td.ScanArgs(t, "state", &state)
		return st.def.Decide(state).String()

	case "run":
		st.store = newStore(st.def, runID, st.def.Start)
		r := st.load(t, td, st.def.Start)
		ctx := context.Background()
		if td.HasArg("cancel") {
			c, cancel := context.WithCancel(ctx)
			cancel()
			ctx = c
		}
		var ran []string
		var err error
		point := catchCrash(func() { err = r.Execute(ctx, st.steps(t, td, &ran)) })
		return st.report(r, "", ran, point, err)

	case "recover":
		state := st.state
		if td.HasArg("state") {
			td.ScanArgs(t, "state", &state)
			st.store = newStore(st.def, runID, state)
		}
		if st.store == nil {
			td.Fatalf(t, "recover: no run to recover; give state=")
		}
		st.store.log = nil
		r := st.load(t, td, state)
		var ran []string
		var dec fsm.Decision
		var err error
		want := st.def.Decide(state)
		// decider=rollback|resume: the answer of the Decider of an
		// External state (kvrflow's for a run that is no cluster node's
		// is rollback).
		var decider fsm.Decider
		if td.HasArg("decider") {
			var d string
			td.ScanArgs(t, "decider", &d)
			answer := map[string]fsm.Decision{"rollback": fsm.RollBack, "resume": fsm.Resume}[d]
			decider = fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) { return answer, nil })
			if want == fsm.Ask {
				want = answer
			}
		}
		point := catchCrash(func() { dec, err = r.RecoverWith(context.Background(), st.steps(t, td, &ran), decider) })
		out := st.report(r, want.String(), ran, point, err)
		if point == "" && dec != want {
			out += fmt.Sprintf("MISMATCH: Recover decided %s, Decide(%s) says %s\n", dec, state, want)
		}
		return out

	default:
		td.Fatalf(t, "unknown command %s", td.Cmd)
		return ""
	}
}

// load returns a handle on the test run in state, with the faults of the
// command's fault= or crash= argument.
func (st *ddState) load(t *testing.T, td *datadriven.TestData, state string) *fsm.Run {
	var faults *fault.Set
	var spec string
	if td.HasArg("fault") {
		td.ScanArgs(t, "fault", &spec)
	}
	if td.HasArg("crash") {
		var point string
		td.ScanArgs(t, "crash", &point)
		spec = point + ":crash"
	}
	if spec != "" {
		var err error
		if faults, err = fault.Parse(spec); err != nil {
			td.Fatalf(t, "fault spec %q: %v", spec, err)
		}
		faults.SetCrash(func(point string) { panic(crashed{point}) })
	}
	return st.def.Load(st.store, runID, state, faults, zerolog.Nop())
}

func (st *ddState) steps(t *testing.T, td *datadriven.TestData, ran *[]string) map[string]fsm.Step {
	var fail []string
	if arg, ok := td.Arg("fail"); ok {
		fail = arg.Vals
	}
	var note string
	if td.HasArg("note") {
		td.ScanArgs(t, "note", &note)
	}
	return fakeSteps(st.def, ran, fail, note)
}

// catchCrash runs fn and returns the fault point it crashed at, if any.
func catchCrash(fn func()) (point string) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crashed)
			if !ok {
				panic(r)
			}
			point = c.point
		}
	}()
	fn()
	return ""
}

// report prints what a run or recover command did: the decision, the
// steps run, the journaled transitions, how it ended and where the run
// stands in the journal and in memory.
func (st *ddState) report(r *fsm.Run, decision string, ran []string, crashPoint string, err error) string {
	var b strings.Builder
	if decision != "" {
		fmt.Fprintf(&b, "decision: %s\n", decision)
	}
	if len(ran) == 0 {
		ran = []string{"(no step)"}
	}
	fmt.Fprintf(&b, "ran: %s\n", strings.Join(ran, " "))
	for _, l := range st.store.log {
		fmt.Fprintln(&b, l)
	}
	switch {
	case crashPoint != "":
		fmt.Fprintf(&b, "crashed at %s\n", crashPoint)
	case err != nil:
		fmt.Fprintf(&b, "error: %v\n", err)
		fmt.Fprintf(&b, "error is: %s\n", classify(err))
	default:
		fmt.Fprintln(&b, "ok")
	}
	st.state = st.store.state[runID]
	if out := st.store.outcome[runID]; out != "" {
		fmt.Fprintf(&b, "journal: %s, outcome %s\n", st.state, out)
	} else {
		fmt.Fprintf(&b, "journal: %s, in flight\n", st.state)
	}
	// After a crash the in-memory FSM is gone with the process; otherwise
	// it must be exactly where the journal is.
	if crashPoint == "" && r.State() != st.state {
		fmt.Fprintf(&b, "MISMATCH: fsm in %s, journal in %s\n", r.State(), st.state)
	}
	return b.String()
}

// classify names the sentinels and types err matches.
func classify(err error) string {
	var out []string
	if errors.Is(err, fsm.ErrRolledBack) {
		out = append(out, "ErrRolledBack")
	}
	if errors.Is(err, fsm.ErrInFlight) {
		out = append(out, "ErrInFlight")
	}
	if errors.Is(err, fsm.ErrIllegal) {
		out = append(out, "ErrIllegal")
	}
	if errors.Is(err, errStep) {
		out = append(out, "step failure")
	}
	if errors.Is(err, fault.ErrInjected) {
		out = append(out, "fault.ErrInjected")
	}
	if errors.Is(err, context.Canceled) {
		out = append(out, "context.Canceled")
	}
	var se *fsm.StepError
	if errors.As(err, &se) {
		out = append(out, "*StepError{Step: "+se.Step+"}")
	}
	if len(out) == 0 {
		return "nothing known"
	}
	return strings.Join(out, ", ")
}

// describe prints a definition: its states, forward path, recovery
// decision in each state and the failure edges.
func describe(d *fsm.Definition) string {
	var b strings.Builder
	fmt.Fprintf(&b, "workflow %s: start %s, commit point %s, rollback %s\n", d.Name, d.Start, d.CommitPoint, d.Rollback)
	fmt.Fprintf(&b, "states: %s\n", strings.Join(d.States(), " "))
	path := []string{d.Start}
	for s := d.Start; ; {
		if _, end := d.IsTerminal(s); end {
			break
		}
		ev := d.Forward[s]
		next, ok := d.Dest(s, ev)
		if !ok || len(path) > 2*len(d.States()) {
			path = append(path, "-"+ev+"-> ?")
			break
		}
		path = append(path, "-"+ev+"-> "+next)
		s = next
	}
	fmt.Fprintf(&b, "forward: %s\n", strings.Join(path, " "))
	for _, s := range d.States() {
		line := fmt.Sprintf("%s: decide %s", s, d.Decide(s))
		if out, end := d.IsTerminal(s); end {
			line += ", terminal " + out
		}
		var exits []string
		for _, ev := range []string{d.FailEvent, d.AbortEvent} {
			if to, ok := d.Dest(s, ev); ok {
				exits = append(exits, ev+"->"+to)
			}
		}
		slices.Sort(exits)
		if len(exits) > 0 {
			line += ", " + strings.Join(exits, " ")
		}
		fmt.Fprintln(&b, line)
	}
	return b.String()
}
