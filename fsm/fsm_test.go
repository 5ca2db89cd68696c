package fsm_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/steps"
)

// linear returns a valid definition over states p+"a" .. p+"d" with the
// commit point at p+"c": start a -go-> b -go-> c -go-> d (terminal "ok"),
// b can fail or abort into p+"rb", which rolls back to p+"gone". Define
// registers fault points per state name, so each test passes its own p.
func linear(p string) fsm.Definition {
	a, b, c, d, rb, gone := p+"a", p+"b", p+"c", p+"d", p+"rb", p+"gone"
	return fsm.Definition{
		Name:  p,
		Start: a,
		Transitions: []fsm.Transition{
			{Event: "go", From: []string{a}, To: b},
			{Event: "go", From: []string{b}, To: c},
			{Event: "go", From: []string{c}, To: d},
			{Event: "fail", From: []string{b}, To: rb},
			{Event: "abort", From: []string{a, b}, To: rb},
			{Event: "undone", From: []string{rb}, To: gone},
		},
		Forward:     map[string]string{a: "go", b: "go", c: "go", rb: "undone"},
		Terminal:    map[string]string{d: "ok", gone: "rolled_back"},
		FailEvent:   "fail",
		AbortEvent:  "abort",
		Rollback:    rb,
		CommitPoint: c,
	}
}

func TestDefine_AcceptsValidDefinitionAndRegistersStepFaultPoints(t *testing.T) {
	d, err := fsm.Define(linear("defok."))
	if err != nil {
		t.Fatalf("Define: %v", err)
	}
	names := fault.Names()
	for _, s := range []string{"defok.b", "defok.c", "defok.rb"} {
		for _, p := range []string{d.Name + "." + s + ".begin", d.Name + "." + s + ".end"} {
			if !slices.Contains(names, p) {
				t.Errorf("fault point %s not registered", p)
			}
		}
	}
	if slices.Contains(names, d.Name+".defok.a.begin") {
		t.Error("the start state, which has no step, got a fault point")
	}
	for state, want := range map[string]fsm.Decision{
		"defok.a": fsm.RollBack, "defok.b": fsm.RollBack, "defok.c": fsm.Resume,
		"defok.rb": fsm.Resume, "defok.d": fsm.Nothing, "defok.gone": fsm.Nothing,
	} {
		if got := d.Decide(state); got != want {
			t.Errorf("Decide(%s) = %s, want %s", state, got, want)
		}
	}
}

func TestDefine_RejectsBadDefinitions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(d *fsm.Definition, p string)
		want   string // in the error
	}{{
		name: "commit point off the forward path",
		mutate: func(d *fsm.Definition, p string) {
			// rb exists, but the forward path a -> b -> c -> d never enters
			// it. c can fail, so that is the only fault.
			d.Transitions = append(slices.Clone(d.Transitions), fsm.Transition{Event: "fail", From: []string{p + "c"}, To: p + "rb"},
				fsm.Transition{Event: "abort", From: []string{p + "c"}, To: p + "rb"})
			d.CommitPoint = p + "rb"
		},
		want: "not on the forward path",
	}, {
		name: "commit point not a state",
		mutate: func(d *fsm.Definition, p string) {
			d.Transitions = append(slices.Clone(d.Transitions), fsm.Transition{Event: "fail", From: []string{p + "c"}, To: p + "rb"},
				fsm.Transition{Event: "abort", From: []string{p + "c"}, To: p + "rb"})
			d.CommitPoint = p + "nowhere"
		},
		want: "not on the forward path",
	}, {
		name: "failable state without a fail transition",
		mutate: func(d *fsm.Definition, p string) {
			d.Transitions = slices.DeleteFunc(slices.Clone(d.Transitions), func(tr fsm.Transition) bool { return tr.Event == "fail" })
		},
		want: "has no fail transition",
	}, {
		name: "failable state without an abort transition",
		mutate: func(d *fsm.Definition, p string) {
			d.Transitions = slices.Clone(d.Transitions)
			for i, tr := range d.Transitions {
				if tr.Event == "abort" {
					d.Transitions[i].From = []string{p + "a"}
				}
			}
		},
		want: "has no abort transition",
	}, {
		name: "state on the forward path without a forward event",
		mutate: func(d *fsm.Definition, p string) {
			d.Forward = map[string]string{p + "a": "go", p + "b": "go", p + "rb": "undone"}
		},
		want: "has no forward event",
	}, {
		name: "forward event that is not a transition",
		mutate: func(d *fsm.Definition, p string) {
			d.Forward = map[string]string{p + "a": "go", p + "b": "jump", p + "c": "go", p + "rb": "undone"}
		},
		want: "forward event jump not defined",
	}, {
		name: "event defined twice from one state",
		mutate: func(d *fsm.Definition, p string) {
			d.Transitions = append(slices.Clone(d.Transitions), fsm.Transition{Event: "go", From: []string{p + "a"}, To: p + "c"})
		},
		want: "defined twice",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := "defbad." + strings.ReplaceAll(tc.name, " ", "-") + "."
			d := linear(p)
			tc.mutate(&d, p)
			def, err := fsm.Define(d)
			if err == nil {
				t.Fatalf("Define accepted it: %+v", def)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Define error %q does not say %q", err, tc.want)
			}
			if slices.Contains(fault.Names(), "step."+p+"b.begin") {
				t.Error("a rejected definition registered fault points")
			}
		})
	}
}

func TestDefine_CyclicForwardPathIsRejected(t *testing.T) {
	p := "defcycle."
	d := linear(p)
	// b -go-> c -back-> b: no terminal state is ever reached.
	d.Transitions = append(slices.Clone(d.Transitions), fsm.Transition{Event: "back", From: []string{p + "c"}, To: p + "b"})
	d.Forward[p+"c"] = "back"
	done := make(chan error, 1)
	go func() {
		_, err := fsm.Define(d)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Define accepted a forward path that never ends")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Define of a cyclic forward path did not return within 5s")
	}
}

// counter counts calls of each fake step.
type counter map[string]int

// restoreSteps returns a step for each state of steps.Restore that counts
// its calls and returns what errs gives for its state (nil if absent).
func restoreSteps(calls counter, errs map[string]error) map[string]fsm.Step {
	out := map[string]fsm.Step{}
	for state := range steps.Restore.Forward {
		if state == steps.Restore.Start {
			continue
		}
		out[state] = func(ctx context.Context, r *fsm.Run) (any, error) {
			calls[state]++
			return nil, errs[state]
		}
	}
	return out
}

func TestExecute_StoreErrorLeavesStateUnchanged(t *testing.T) {
	errJournal := errors.New("journal write failed")
	store := newStore(steps.Restore, runID, steps.StateNew)
	store.failOn = func(from, event, to string) error {
		if event == "checked" {
			return errJournal
		}
		return nil
	}
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	calls := counter{}
	err := r.Execute(context.Background(), restoreSteps(calls, nil))
	if !errors.Is(err, errJournal) || !errors.Is(err, fsm.ErrInFlight) {
		t.Fatalf("Execute = %v, want the journal error and ErrInFlight", err)
	}
	// Journal first, then move: the transition was refused, so the FSM is
	// still where the journal is.
	if r.State() != steps.StatePrecheck || store.state[runID] != steps.StatePrecheck {
		t.Fatalf("fsm in %s, journal in %s; want both in precheck", r.State(), store.state[runID])
	}
	if calls[steps.StateClean] != 0 {
		t.Error("the next step ran although the transition into it was not journaled")
	}

	// The journal works again: the same handle goes on from precheck.
	store.failOn = nil
	if err := r.Execute(context.Background(), restoreSteps(calls, nil)); err != nil {
		t.Fatalf("Execute after the journal recovered: %v", err)
	}
	if r.State() != steps.StateDone || store.outcome[runID] != steps.OutcomeCommitted {
		t.Errorf("fsm in %s, journal outcome %q; want done, committed", r.State(), store.outcome[runID])
	}
	if calls[steps.StatePrecheck] != 2 {
		t.Errorf("precheck ran %d times, want 2 (its completion was lost the first time)", calls[steps.StatePrecheck])
	}
}

func TestExecute_StoreErrorOnFailEventLeavesStateUnchanged(t *testing.T) {
	errJournal := errors.New("journal write failed")
	errStep := errors.New("step failed")
	store := newStore(steps.Restore, runID, steps.StateNew)
	store.failOn = func(from, event, to string) error {
		if event == steps.Restore.FailEvent {
			return errJournal
		}
		return nil
	}
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	calls := counter{}
	err := r.Execute(context.Background(), restoreSteps(calls, map[string]error{steps.StateWrite: errStep}))
	for _, want := range []error{fsm.ErrInFlight, errJournal, errStep} {
		if !errors.Is(err, want) {
			t.Errorf("Execute = %v, does not match %v", err, want)
		}
	}
	if r.State() != steps.StateWrite || store.state[runID] != steps.StateWrite {
		t.Errorf("fsm in %s, journal in %s; want both in write", r.State(), store.state[runID])
	}
	if calls[steps.StateRollback] != 0 {
		t.Error("rollback ran although the failure was not journaled")
	}
}

func TestExecute_CancelledContextRollsBackWithoutWedging(t *testing.T) {
	store := newStore(steps.Restore, runID, steps.StateNew)
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := counter{}
	done := make(chan error, 1)
	go func() { done <- r.Execute(ctx, restoreSteps(calls, nil)) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Execute with a cancelled context did not return within 5s")
	}
	if !errors.Is(err, fsm.ErrRolledBack) || !errors.Is(err, context.Canceled) {
		t.Errorf("Execute = %v, want ErrRolledBack and context.Canceled", err)
	}
	var se *fsm.StepError
	if !errors.As(err, &se) || se.Step != steps.StatePrecheck {
		t.Errorf("Execute = %v, want a *StepError for precheck", err)
	}
	if r.State() != steps.StateRolledBack || store.outcome[runID] != steps.OutcomeRolledBack {
		t.Errorf("fsm in %s, journal outcome %q; want %s, %s", r.State(), store.outcome[runID], steps.StateRolledBack, steps.OutcomeRolledBack)
	}
	if calls[steps.StatePrecheck] != 0 {
		t.Error("precheck ran with a cancelled context")
	}
	if calls[steps.StateRollback] != 1 {
		t.Errorf("rollback ran %d times, want 1", calls[steps.StateRollback])
	}
}

func TestExecute_CancelAfterCommitPointDoesNotStopRun(t *testing.T) {
	// Steps after the commit point get a context that is never cancelled.
	store := newStore(steps.Restore, runID, steps.StateFinish)
	r := steps.Restore.Load(store, runID, steps.StateFinish, nil, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var sawErr error
	stepsMap := map[string]fsm.Step{steps.StateFinish: func(ctx context.Context, r *fsm.Run) (any, error) {
		sawErr = ctx.Err()
		return nil, nil
	}}
	if err := r.Execute(ctx, stepsMap); err != nil {
		t.Fatalf("Execute = %v", err)
	}
	if sawErr != nil {
		t.Errorf("finish step saw a cancelled context: %v", sawErr)
	}
	if r.State() != steps.StateDone {
		t.Errorf("run in %s, want done", r.State())
	}
}

func TestExecute_FailingRollbackLeavesRunInFlight(t *testing.T) {
	errUndo := errors.New("cannot undo")
	store := newStore(steps.Restore, runID, steps.StateNew)
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	calls := counter{}
	err := r.Execute(context.Background(), restoreSteps(calls, map[string]error{
		steps.StateVerify:   errors.New("checksum mismatch"),
		steps.StateRollback: errUndo,
	}))
	var se *fsm.StepError
	if !errors.As(err, &se) {
		t.Fatalf("Execute = %v, want a *fsm.StepError", err)
	}
	if se.Step != steps.StateRollback || !errors.Is(se, errUndo) {
		t.Errorf("StepError %+v, want step rollback caused by %v", se, errUndo)
	}
	if !errors.Is(err, fsm.ErrInFlight) {
		t.Errorf("Execute = %v, want ErrInFlight", err)
	}
	if errors.Is(err, fsm.ErrRolledBack) {
		t.Errorf("Execute = %v claims the run was rolled back", err)
	}
	if r.State() != steps.StateRollback || store.state[runID] != steps.StateRollback || store.outcome[runID] != "" {
		t.Errorf("fsm in %s, journal in %s outcome %q; want rollback, in flight", r.State(), store.state[runID], store.outcome[runID])
	}
	if calls[steps.StateRollback] != fsm.Attempts {
		t.Errorf("rollback tried %d times, want fsm.Attempts = %d", calls[steps.StateRollback], fsm.Attempts)
	}
	if steps.Restore.Decide(store.state[runID]) != fsm.Resume {
		t.Error("the next recovery would not resume the rollback")
	}
}

func TestExecute_RolledBackErrorMatchesStepCause(t *testing.T) {
	cause := &os.PathError{Op: "open", Path: "/backup/000005.sst", Err: fs.ErrPermission}
	store := newStore(steps.Restore, runID, steps.StateNew)
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	err := r.Execute(context.Background(), restoreSteps(counter{}, map[string]error{steps.StateWrite: cause}))
	if !errors.Is(err, fsm.ErrRolledBack) {
		t.Errorf("Execute = %v, want ErrRolledBack", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Execute = %v, the step's cause fs.ErrPermission does not match", err)
	}
	var se *fsm.StepError
	if !errors.As(err, &se) {
		t.Fatalf("Execute = %v, want a *fsm.StepError", err)
	}
	if se.Step != steps.StateWrite || se.Op != "open" || se.Path != "/backup/000005.sst" {
		t.Errorf("StepError = %+v, want step write, op open, path /backup/000005.sst", se)
	}
	if errors.Is(err, fsm.ErrInFlight) {
		t.Errorf("Execute = %v: a rolled-back run is not in flight", err)
	}
	if store.outcome[runID] != steps.OutcomeRolledBack {
		t.Errorf("journal outcome %q, want %s", store.outcome[runID], steps.OutcomeRolledBack)
	}
}

func TestStepError_KeepsInnerStepName(t *testing.T) {
	// A step that returns another step's *StepError (a shared helper) keeps
	// the innermost step name, not the state it ran in.
	inner := &fsm.StepError{Step: "inner", Err: errors.New("x")}
	store := newStore(steps.Restore, runID, steps.StateNew)
	r := steps.Restore.Load(store, runID, steps.StateNew, nil, zerolog.Nop())
	err := r.Execute(context.Background(), restoreSteps(counter{}, map[string]error{steps.StateClean: inner}))
	var se *fsm.StepError
	if !errors.As(err, &se) || se != inner {
		t.Errorf("Execute = %v, want the step's own *StepError", err)
	}
}

func TestRecover_EndedRunJournalsNothing(t *testing.T) {
	for _, state := range []string{steps.StateDone, steps.StateRolledBack} {
		store := newStore(steps.Restore, runID, state)
		r := steps.Restore.Load(store, runID, state, nil, zerolog.Nop())
		calls := counter{}
		dec, err := r.Recover(context.Background(), restoreSteps(calls, nil))
		if dec != fsm.Nothing || err != nil {
			t.Errorf("Recover in %s = %s, %v; want nothing, nil", state, dec, err)
		}
		if len(store.log) != 0 || len(calls) != 0 {
			t.Errorf("Recover in %s journaled %v and ran %v", state, store.log, calls)
		}
	}
}

func TestDecision_String(t *testing.T) {
	for d, want := range map[fsm.Decision]string{fsm.Nothing: "nothing", fsm.Resume: "resume", fsm.RollBack: "roll back"} {
		if got := d.String(); got != want {
			t.Errorf("Decision(%d).String() = %q, want %q", int(d), got, want)
		}
	}
}
