package fsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	lfsm "github.com/looplab/fsm"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// NoteEvent is the event name of a note: a record a step makes, from its
// own state to itself, before it acts on disk.
const NoteEvent = "note"

// Transition is one edge of a workflow: Event leads from any of From to To.
type Transition struct {
	Event string
	From  []string
	To    string
}

// Definition is a workflow: its states, events and recovery rule. A
// Definition is immutable once Define returns it and safe to share.
type Definition struct {
	Name string
	// Start is the state a run is created in; Forward[Start] leads out of
	// it without a step.
	Start string
	// Transitions lists every legal edge.
	Transitions []Transition
	// Forward maps a state to the event its step fires on success.
	Forward map[string]string
	// Terminal maps each terminal state to the run's outcome.
	Terminal map[string]string
	// FailEvent leads from a failable state to Rollback when its step fails.
	FailEvent string
	// AbortEvent leads from a failable state to Rollback when recovery finds
	// a run interrupted there.
	AbortEvent string
	// Rollback is the state whose step undoes a run.
	Rollback string
	// CommitPoint is the first state entered after the commit: from it on,
	// recovery finishes a run instead of undoing it.
	CommitPoint string
	// Permanent, if set, reports a step error that trying again cannot
	// fix (the disk contradicts the journal): idempotent steps are not
	// retried on it.
	Permanent func(error) bool
	// External lists the states whose recovery decision is not the
	// journal's to make: Recover asks the Decider it is given (see
	// Decider). A state listed here must be before the commit point.
	External []string
	// Aliases maps fault point names of earlier versions to this
	// workflow's (for example step.write.begin to restore.write.begin), so
	// that specs written for them keep working.
	Aliases map[string]string

	failable   map[string]bool
	resumable  map[string]bool
	external   map[string]bool
	beginPoint map[string]string
	endPoint   map[string]string
}

// Define checks d and returns it ready for use. It registers two fault
// points per state with a step, named after the workflow: NAME.STATE.begin
// (the state's intent is durable, the step has not acted) and
// NAME.STATE.end (the step has acted, its completion is not yet
// journaled), and d.Aliases for them. It must be called once per
// definition name, normally at package init; two workflows may share
// state names.
func Define(d Definition) (*Definition, error) {
	seen := map[[2]string]bool{}
	for _, t := range d.Transitions {
		for _, f := range t.From {
			k := [2]string{f, t.Event}
			if seen[k] {
				return nil, fmt.Errorf("workflow %s: event %s from %s defined twice", d.Name, t.Event, f)
			}
			seen[k] = true
		}
	}

	// Walk forward from Start: every state before the commit point can
	// fail into Rollback; from the commit point on, runs are resumed.
	d.failable, d.resumable = map[string]bool{}, map[string]bool{}
	d.beginPoint, d.endPoint = map[string]string{}, map[string]string{}
	committed := false
	visited := map[string]bool{}
	for s := d.Start; ; {
		if visited[s] {
			return nil, fmt.Errorf("workflow %s: the forward path loops back to %s without reaching a terminal state", d.Name, s)
		}
		visited[s] = true
		if s == d.CommitPoint {
			committed = true
		}
		if _, end := d.Terminal[s]; end {
			break
		}
		if committed {
			d.resumable[s] = true
		} else if s != d.Start {
			d.failable[s] = true
			if _, ok := d.Dest(s, d.FailEvent); !ok {
				return nil, fmt.Errorf("workflow %s: state %s has no %s transition", d.Name, s, d.FailEvent)
			}
			if _, ok := d.Dest(s, d.AbortEvent); !ok {
				return nil, fmt.Errorf("workflow %s: state %s has no %s transition", d.Name, s, d.AbortEvent)
			}
		}
		ev, ok := d.Forward[s]
		if !ok {
			return nil, fmt.Errorf("workflow %s: state %s has no forward event", d.Name, s)
		}
		next, ok := d.Dest(s, ev)
		if !ok {
			return nil, fmt.Errorf("workflow %s: forward event %s not defined from %s", d.Name, ev, s)
		}
		s = next
	}
	if !committed {
		return nil, fmt.Errorf("workflow %s: commit point %s is not on the forward path", d.Name, d.CommitPoint)
	}
	d.resumable[d.Rollback] = true
	d.external = map[string]bool{}
	for _, s := range d.External {
		if !d.failable[s] {
			return nil, fmt.Errorf("workflow %s: external state %s is not a state before the commit point", d.Name, s)
		}
		d.external[s] = true
	}
	for s := range d.Forward {
		if s != d.Start {
			d.beginPoint[s] = fault.Register(d.Name+"."+s+".begin", d.Name+": state "+s+" journaled, its step not yet run")
			d.endPoint[s] = fault.Register(d.Name+"."+s+".end", d.Name+": step "+s+" done, its completion not yet journaled")
		}
	}
	for old, now := range d.Aliases {
		fault.Alias(old, now)
	}
	return &d, nil
}

// MustDefine is Define that panics on error, for package-level definitions.
func MustDefine(d Definition) *Definition {
	def, err := Define(d)
	if err != nil {
		panic(err)
	}
	return def
}

// Dest returns the state event leads to from state. It asks the looplab
// FSM, which is the workflow's one transition table: a copy of it is set
// to from and moved by event.
func (d *Definition) Dest(from, event string) (string, bool) {
	m := d.NewFSM(from)
	if !m.Can(event) {
		return "", false
	}
	if err := m.Event(context.Background(), event); err != nil {
		return "", false
	}
	return m.Current(), true
}

// States returns every state, sorted.
func (d *Definition) States() []string {
	set := map[string]bool{d.Start: true}
	for _, t := range d.Transitions {
		set[t.To] = true
		for _, f := range t.From {
			set[f] = true
		}
	}
	var out []string
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// IsTerminal reports whether state ends a run, and with which outcome.
func (d *Definition) IsTerminal(state string) (outcome string, ok bool) {
	outcome, ok = d.Terminal[state]
	return outcome, ok
}

// NewFSM returns a looplab FSM of the definition in state, with no
// callbacks: kvrflow moves it only after the journal holds the transition.
func (d *Definition) NewFSM(state string) *lfsm.FSM {
	var evs lfsm.Events
	for _, t := range d.Transitions {
		evs = append(evs, lfsm.EventDesc{Name: t.Event, Src: t.From, Dst: t.To})
	}
	return lfsm.NewFSM(state, evs, nil)
}

// Decision is what recovery does with a run found in a state.
type Decision int

const (
	// Nothing: the run has ended.
	Nothing Decision = iota
	// Resume: run the state's step and go on (the run is past its commit
	// point, or is rolling back).
	Resume
	// RollBack: fire the abort event, then run the rollback step.
	RollBack
	// Ask: the state is External; its Decider decides Resume or RollBack.
	Ask
)

func (d Decision) String() string {
	return [...]string{"nothing", "resume", "roll back", "ask the decider"}[d]
}

// Decider makes the recovery decision of a run found in an External state,
// from outside the journal (a cluster restore's prepared state asks the
// cluster's decision log). It returns Resume (the run goes on forward from
// the state, running its step) or RollBack; any error (ErrUndecided when
// there is no decision yet, or the decision log is unreachable) leaves the
// run in flight exactly as it is: recovery never guesses. It must be safe
// to ask again.
type Decider interface {
	Decide(ctx context.Context, run uint64, state string) (Decision, error)
}

// DeciderFunc is a function that is a Decider.
type DeciderFunc func(ctx context.Context, run uint64, state string) (Decision, error)

// Decide calls f.
func (f DeciderFunc) Decide(ctx context.Context, run uint64, state string) (Decision, error) {
	return f(ctx, run, state)
}

// Decide is the recovery rule. It depends only on the journaled state, so
// the same crash always gives the same decision; the steps then act on
// what they can check on disk.
func (d *Definition) Decide(state string) Decision {
	switch {
	case d.Terminal[state] != "":
		return Nothing
	case d.resumable[state]:
		return Resume
	case d.external[state]:
		return Ask
	default:
		return RollBack
	}
}

// Store is where a run's transitions are made durable (the journal).
// Append must be durable when it returns nil, and must change nothing and
// return an error if from is not the run's current state.
type Store interface {
	Append(run uint64, from, event, to string, details any, outcome, errText string) error
}

// Step does the work of one state. It returns details to journal with the
// transition out of the state. A step must be safe to run again after a
// crash at any point inside it.
type Step func(ctx context.Context, r *Run) (details any, err error)

// Run is one run of a workflow, in memory.
type Run struct {
	ID     uint64
	def    *Definition
	store  Store
	m      *lfsm.FSM
	faults *fault.Set
	log    zerolog.Logger
	cause  error
	// forward is set when a Decider sent the run forward from an External
	// state: that decision is a commit, so from then on a failing step is
	// tried again and leaves the run in flight, as past the commit point,
	// never rolls it back.
	forward bool
}

// Load returns a handle on run id, found in state in the journal.
func (d *Definition) Load(store Store, id uint64, state string, faults *fault.Set, log zerolog.Logger) *Run {
	return &Run{ID: id, def: d, store: store, m: d.NewFSM(state), faults: faults, log: log}
}

// State returns the run's current (journaled) state.
func (r *Run) State() string { return r.m.Current() }

// Cause returns the error of the step whose failure is being rolled back
// in this process, or nil (a rollback recovery started).
func (r *Run) Cause() error { return r.cause }

// Definition returns the run's workflow.
func (r *Run) Definition() *Definition { return r.def }

// Note journals details in the current state before a step acts on them
// (for example the plan of a commit), so recovery can read them.
func (r *Run) Note(details any) error {
	s := r.State()
	return r.store.Append(r.ID, s, NoteEvent, s, details, "", "")
}

// fire journals event from the current state, then moves the FSM.
func (r *Run) fire(event string, details any, errText string) error {
	from := r.State()
	to, ok := r.def.Dest(from, event)
	if !ok || !r.m.Can(event) {
		return fmt.Errorf("run %d: %w: %s from %s", r.ID, ErrIllegal, event, from)
	}
	if err := r.store.Append(r.ID, from, event, to, details, r.def.Terminal[to], errText); err != nil {
		return err
	}
	// Journal first, then move: with no callbacks and a background
	// context, Event cannot fail half-way.
	if err := r.m.Event(context.Background(), event); err != nil {
		return fmt.Errorf("run %d: fsm %s from %s: %w", r.ID, event, from, err)
	}
	r.log.Debug().Uint64("run", r.ID).Str("from", from).Str("event", event).Str("to", to).Msg("transition")
	return nil
}

// Execute runs steps from the current state until a terminal state. A step
// error in a state before the commit point is journaled with the fail
// event and the rollback step runs; Execute then returns an error matching
// ErrRolledBack and the step's *StepError. The rollback step and the steps
// after the commit point are idempotent by contract: on error they are
// tried again (Attempts in all, with a pause between), and if they still
// fail Execute returns an error matching ErrInFlight and the *StepError,
// leaving the run in flight for recovery. So does a failed journal write.
// Steps after the commit point and the rollback step run with a context
// that is never cancelled.
func (r *Run) Execute(ctx context.Context, steps map[string]Step) error {
	return r.ExecuteUntil(ctx, steps, "")
}

// ExecuteUntil is Execute that stops, returning nil, when the run enters
// state stop (journaled; its step not run): a two-phase workflow's
// prepare-only run stops in its External state and waits for the
// decision (RecoverWith then resumes or rolls it back). An empty stop
// runs to a terminal state.
func (r *Run) ExecuteUntil(ctx context.Context, steps map[string]Step, stop string) error {
	for {
		state := r.State()
		if stop != "" && state == stop {
			return nil
		}
		if _, ok := r.def.Terminal[state]; ok {
			if r.cause != nil {
				return fmt.Errorf("%w: %w", ErrRolledBack, r.cause)
			}
			return nil
		}
		ev, hasForward := r.def.Forward[state]
		if !hasForward {
			return fmt.Errorf("%w: run %d: %w: no forward event from %s", ErrInFlight, r.ID, ErrIllegal, state)
		}
		var details any
		var err error
		if step, ok := steps[state]; ok {
			details, err = r.runStep(ctx, state, step)
		} else if state != r.def.Start {
			return fmt.Errorf("%w: run %d: %w: no step for state %s", ErrInFlight, r.ID, ErrIllegal, state)
		}
		if err != nil {
			if !r.def.failable[state] || r.forward {
				if r.cause != nil {
					// The rollback of a failed step failed: say why the run
					// was being rolled back too (as text: the exit code is
					// the in-flight run's, not the first failure's).
					return fmt.Errorf("%w: %w (rolling back after: %v)", ErrInFlight, err, r.cause)
				}
				return fmt.Errorf("%w: %w", ErrInFlight, err)
			}
			r.cause = err
			r.log.Warn().Uint64("run", r.ID).Str("state", state).Err(err).Msg("step failed; rolling back")
			if ferr := r.fire(r.def.FailEvent, failDetails{Error: err.Error(), Details: details}, err.Error()); ferr != nil {
				return fmt.Errorf("%w: %w (and journaling the failure: %w)", ErrInFlight, err, ferr)
			}
			continue
		}
		if err := r.fire(ev, details, ""); err != nil {
			return fmt.Errorf("%w: %w", ErrInFlight, err)
		}
	}
}

// Attempts is how often Execute tries an idempotent step (the rollback
// step, and the steps after the commit point) before leaving the run in
// flight.
const Attempts = 3

// RetryPause is the pause before the second attempt; it doubles after.
var RetryPause = 50 * time.Millisecond

type failDetails struct {
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

func (r *Run) runStep(ctx context.Context, state string, step Step) (any, error) {
	if r.def.failable[state] && !r.forward {
		return r.tryStep(ctx, state, step)
	}
	ctx = context.WithoutCancel(ctx)
	pause := RetryPause
	for attempt := 1; ; attempt++ {
		details, err := r.tryStep(ctx, state, step)
		if err == nil || attempt == Attempts || r.def.Permanent != nil && r.def.Permanent(err) {
			return details, err
		}
		r.log.Warn().Uint64("run", r.ID).Str("state", state).Int("attempt", attempt).Err(err).Msg("idempotent step failed; trying again")
		time.Sleep(pause)
		pause *= 2
	}
}

func (r *Run) tryStep(ctx context.Context, state string, step Step) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, &StepError{Step: state, Err: err}
	}
	if err := r.faults.Hit(r.def.beginPoint[state]); err != nil {
		return nil, newStepError(state, err)
	}
	details, err := step(ctx, r)
	if err == nil {
		err = r.faults.Hit(r.def.endPoint[state])
	}
	if err != nil {
		return details, newStepError(state, err)
	}
	return details, nil
}

// Recover applies the recovery rule to the run: nothing for an ended run;
// otherwise resume it or abort it into rollback, then Execute. A run
// recovery rolled back returns nil: the rollback is the recovery's
// success; Outcome tells. A run in an External state is left in flight
// (ErrInFlight and ErrUndecided): use RecoverWith.
func (r *Run) Recover(ctx context.Context, steps map[string]Step) (Decision, error) {
	return r.RecoverWith(ctx, steps, nil)
}

// RecoverWith is Recover that asks decider for a run found in an External
// state. Without a decider, or when it returns an error, nothing is
// journaled and the run stays in flight: the error matches ErrInFlight
// (and ErrUndecided without a decider). A decision to Resume is the
// run's commit: from then on a step that fails is tried again and then
// leaves the run in flight (as after the commit point), and is never
// rolled back.
func (r *Run) RecoverWith(ctx context.Context, steps map[string]Step, decider Decider) (Decision, error) {
	dec := r.def.Decide(r.State())
	if dec == Ask {
		if decider == nil {
			return dec, fmt.Errorf("%w: run %d: %w: state %s is decided outside the journal and no decider was given", ErrInFlight, r.ID, ErrUndecided, r.State())
		}
		d, err := decider.Decide(ctx, r.ID, r.State())
		if err != nil {
			return dec, fmt.Errorf("%w: run %d in %s: %w", ErrInFlight, r.ID, r.State(), err)
		}
		if d != Resume && d != RollBack {
			return dec, fmt.Errorf("%w: run %d in %s: the decider answered %s", ErrInFlight, r.ID, r.State(), d)
		}
		dec = d
		// Forward from an External state is the run's commit decision.
		r.forward = d == Resume
	}
	switch dec {
	case Nothing:
		return dec, nil
	case RollBack:
		if err := r.fire(r.def.AbortEvent, abortDetails{Reason: "recovery found the run interrupted in " + r.State()}, ""); err != nil {
			return dec, fmt.Errorf("%w: %w", ErrInFlight, err)
		}
	}
	return dec, r.Execute(context.WithoutCancel(ctx), steps)
}

type abortDetails struct {
	Reason string `json:"reason"`
}

// StepError is a step's failure: the step (state), and the operation and
// path of the file-system error below it when there is one.
type StepError struct {
	Step string
	Op   string
	Path string
	Err  error
}

func newStepError(state string, err error) *StepError {
	var se *StepError
	if errors.As(err, &se) {
		return se
	}
	e := &StepError{Step: state, Err: err}
	var pe *os.PathError
	if errors.As(err, &pe) {
		e.Op, e.Path = pe.Op, pe.Path
	}
	return e
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }
