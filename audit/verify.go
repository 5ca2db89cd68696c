package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Journal  string            `json:"journal"`
	Runs     int               `json:"runs"`
	Events   int               `json:"events"`
	InFlight []uint64          `json:"in_flight"`
	Problems []journal.Problem `json:"problems"`
}

// OK reports whether the journal verified without a problem.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks the journal at path, read-only: every hash chain
// (journal.CheckEach), then a replay of each run's events through the
// state machine of its workflow, wf[run.Kind] (Default if wf is nil), the
// one the engine uses: every transition legal from the state the run was
// in, the first from the start state, and every ended run in the terminal
// state of its outcome. A run of a kind wf lacks is a problem. Runs in
// flight are listed, not faulted. Events counts the events replayed: the
// events of the runs whose chain checked. Problems come in run and
// sequence order: the first is the first bad record.
//
// Each event is decoded once, by the chain check, which hands each run's
// events to the replay; what Verify keeps is a few words per run.
func Verify(path string, wf Workflows) (*VerifyReport, error) {
	wf = wf.orDefault()
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	rep := &VerifyReport{Journal: path, InFlight: []uint64{}, Problems: []journal.Problem{}}
	// A run's replay is judged only once the check is done: a problem the
	// check finds after the walk (the journal's head) discards the replay
	// of the run it names, as a broken chain does.
	type replayed struct {
		run     uint64
		events  int
		problem *journal.Problem
	}
	var results []replayed
	probs, err := j.CheckEach(func(r journal.Run, evs []journal.Event, whole bool) {
		rep.Runs++
		if r.InFlight() {
			rep.InFlight = append(rep.InFlight, r.ID)
		}
		if !whole {
			return // its chain is broken: replaying it proves nothing more
		}
		res := replayed{run: r.ID, events: len(evs)}
		if def := wf[r.Kind]; def == nil {
			res.problem = &journal.Problem{Run: r.ID, What: fmt.Sprintf("run of kind %q: no workflow of that kind to replay it through (known: %s)", r.Kind, wf.kinds())}
		} else {
			res.problem = replayRun(def, r, evs)
		}
		results = append(results, res)
	})
	if err != nil {
		return nil, err
	}
	bad := map[uint64]bool{}
	for _, p := range probs {
		bad[p.Run] = true
	}
	rep.Problems = append(rep.Problems, probs...)
	for _, res := range results {
		if bad[res.run] {
			continue
		}
		rep.Events += res.events
		if res.problem != nil {
			rep.Problems = append(rep.Problems, *res.problem)
		}
	}
	slices.SortStableFunc(rep.Problems, func(a, b journal.Problem) int {
		return cmp.Or(cmp.Compare(a.Run, b.Run), cmp.Compare(a.Seq, b.Seq))
	})
	return rep, nil
}

// replayRun moves a looplab FSM of def through the run's events and
// returns the first illegal one.
func replayRun(def *fsm.Definition, r journal.Run, evs []journal.Event) *journal.Problem {
	f := def.NewFSM(def.Start)
	for _, ev := range evs {
		bad := func(format string, args ...any) *journal.Problem {
			return &journal.Problem{Run: r.ID, Seq: ev.Seq, What: fmt.Sprintf(format, args...)}
		}
		state := f.Current()
		if ev.From != state {
			return bad("starts from %q, but the run is in %q", ev.From, state)
		}
		if ev.Event == fsm.NoteEvent {
			if ev.To != state {
				return bad("a note must stay in %q, it leads to %q", state, ev.To)
			}
			continue
		}
		if to, ok := def.Dest(state, ev.Event); !ok || to != ev.To {
			return bad("%s -%s-> %s is not a transition of the %s workflow", ev.From, ev.Event, ev.To, def.Name)
		}
		if err := f.Event(context.Background(), ev.Event); err != nil {
			return bad("the FSM refuses %s from %s: %v", ev.Event, state, err)
		}
	}
	outcome, terminal := def.IsTerminal(f.Current())
	switch {
	case f.Current() != r.State:
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("the events lead to %q, the run record says %q", f.Current(), r.State)}
	case r.InFlight() && terminal:
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("in terminal state %q but recorded as in flight", f.Current())}
	case !r.InFlight() && (!terminal || outcome != r.Outcome):
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("recorded outcome %q, but its events end in %q", r.Outcome, f.Current())}
	}
	return nil
}
