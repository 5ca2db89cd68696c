package fsm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
)

// twoPhase is a workflow with a prepared state whose recovery decision
// comes from outside the journal, as a cluster restore's does:
// new -> prepare -> prepared -> commit -> done, rolling back to failed.
var twoPhase = fsm.MustDefine(fsm.Definition{
	Name:  "twophase",
	Start: "new",
	Transitions: []fsm.Transition{
		{Event: "start", From: []string{"new"}, To: "prepare"},
		{Event: "prepared", From: []string{"prepare"}, To: "prepared"},
		{Event: "decided", From: []string{"prepared"}, To: "commit"},
		{Event: "committed", From: []string{"commit"}, To: "done"},
		{Event: "fail", From: []string{"prepare", "prepared"}, To: "rollback"},
		{Event: "abort", From: []string{"new", "prepare", "prepared"}, To: "rollback"},
		{Event: "rolled_back", From: []string{"rollback"}, To: "failed"},
	},
	Forward: map[string]string{"new": "start", "prepare": "prepared", "prepared": "decided",
		"commit": "committed", "rollback": "rolled_back"},
	Terminal:    map[string]string{"done": "committed", "failed": "rolled_back"},
	FailEvent:   "fail",
	AbortEvent:  "abort",
	Rollback:    "rollback",
	CommitPoint: "commit",
	External:    []string{"prepared"},
})

func twoPhaseSteps(calls counter) map[string]fsm.Step {
	out := map[string]fsm.Step{}
	for _, s := range []string{"prepare", "prepared", "commit", "rollback"} {
		out[s] = func(context.Context, *fsm.Run) (any, error) { calls[s]++; return nil, nil }
	}
	return out
}

// TestRecoverWith_ExternalStateAsksTheDecider: a run found in an External
// state is resumed or rolled back as the decider says; without a decider,
// or when it cannot decide, nothing is journaled and the run stays in
// flight; states decided by the journal never ask.
func TestRecoverWith_ExternalStateAsksTheDecider(t *testing.T) {
	if got := twoPhase.Decide("prepared"); got != fsm.Ask {
		t.Fatalf("Decide(prepared) = %s, want ask", got)
	}
	errUnreachable := errors.New("decision log unreachable")
	for _, tc := range []struct {
		name    string
		decider fsm.Decider
		outcome string // "" : left in flight
		want    error
	}{
		{"commit", fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) { return fsm.Resume, nil }), "committed", nil},
		{"abort", fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) { return fsm.RollBack, nil }), "rolled_back", nil},
		{"no decision yet", fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) {
			return 0, fsm.ErrUndecided
		}), "", fsm.ErrUndecided},
		{"unreachable", fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) { return 0, errUnreachable }), "", errUnreachable},
		{"answer that is no decision", fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) { return fsm.Nothing, nil }), "", fsm.ErrInFlight},
		{"no decider", nil, "", fsm.ErrUndecided},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newStore(twoPhase, runID, "prepared")
			r := twoPhase.Load(store, runID, "prepared", nil, zerolog.Nop())
			calls := counter{}
			_, err := r.RecoverWith(context.Background(), twoPhaseSteps(calls), tc.decider)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || !errors.Is(err, fsm.ErrInFlight) {
					t.Fatalf("err = %v, want %v and ErrInFlight", err, tc.want)
				}
				if len(store.log) != 0 || len(calls) != 0 || r.State() != "prepared" {
					t.Fatalf("an undecided recovery journaled %v, ran %v, moved to %s", store.log, calls, r.State())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if store.outcome[runID] != tc.outcome {
				t.Fatalf("outcome %q, want %q", store.outcome[runID], tc.outcome)
			}
		})
	}
	// A state before it is decided by the journal: the decider is not asked.
	store := newStore(twoPhase, runID, "prepare")
	r := twoPhase.Load(store, runID, "prepare", nil, zerolog.Nop())
	asked := false
	_, err := r.RecoverWith(context.Background(), twoPhaseSteps(counter{}), fsm.DeciderFunc(func(context.Context, uint64, string) (fsm.Decision, error) {
		asked = true
		return fsm.Resume, nil
	}))
	if err != nil || asked || store.outcome[runID] != "rolled_back" {
		t.Fatalf("prepare: err %v, asked %v, outcome %q; want rolled back without asking", err, asked, store.outcome[runID])
	}
}

// TestDefine_TwoWorkflowsShareStateNames: workflows may have states of the
// same name; their fault points are named after the workflow.
func TestDefine_TwoWorkflowsShareStateNames(t *testing.T) {
	a, b := linear("shared."), linear("shared.")
	a.Name, b.Name = "wfa", "wfb"
	if _, err := fsm.Define(a); err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.Define(b); err != nil {
		t.Fatalf("a second workflow with the same state names: %v", err)
	}
	if _, err := fault.Parse("wfa.shared.b.begin:eio,wfb.shared.b.begin:eio"); err != nil {
		t.Fatalf("each workflow's points: %v", err)
	}
}

// TestDefine_AliasesKeepOldFaultNames: a spec written with a point's
// earlier name fires the point.
func TestDefine_AliasesKeepOldFaultNames(t *testing.T) {
	set, err := fault.Parse("step.write.begin:eio")
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Hit("restore.write.begin"); err == nil {
		t.Fatal("the alias step.write.begin did not fire restore.write.begin")
	}
}
