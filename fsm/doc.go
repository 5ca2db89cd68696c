// Package fsm is a small durable workflow engine on github.com/looplab/fsm.
//
// A Definition names the states, the events between them, the event each
// state's step fires on success, the fail and abort events into the
// rollback state, and the commit point. A Run executes steps one state at
// a time; every transition is appended to a Store (the journal) before the
// in-memory FSM moves and before the next step acts, so the journal is
// always at or ahead of what happened on disk.
//
// # Crash safety
//
// The record that leaves state S is at once S's completion and the next
// state's intent: one durable write per transition. Recovery (Run.Recover)
// applies Decide, a rule that depends only on the journaled state: a run
// interrupted before the commit point is aborted into rollback; one at or
// after it, or already rolling back, is resumed. Steps must therefore be
// idempotent: safe to run again after a crash anywhere inside them.
//
// # Caveats
//
// looplab/fsm is the one transition table: Define builds it from the
// Definition's Transitions (refusing an event defined twice from a state,
// which looplab would silently overwrite); Dest asks it for the
// destination (a copy set to the source state and moved by the event),
// Run asks it whether an event is legal (Can) and moves with it, and
// audit draws it. looplab/fsm callbacks cannot return errors and an
// already-cancelled context wedges an FSM, so the engine uses no
// callbacks and always moves the FSM with context.Background after the
// journal write succeeded. Steps after the commit point and the rollback
// step get a context that is never cancelled, so a signal cannot leave
// them half-done.
//
// Several workflows live side by side: fault points are named after the
// workflow (restore.write.begin), so workflows may share state names;
// Aliases keeps older point names working. A state listed in External
// takes its recovery decision from a Decider (RecoverWith), never from
// the journal alone: without a decision the run stays in flight. A
// Decider's Resume is the run's commit: from then on a failing step is
// retried and leaves the run in flight, as after the commit point, and
// is never rolled back. ExecuteUntil stops a run on entering a state
// (a two-phase workflow's prepare-only run stops in its External state).
package fsm
