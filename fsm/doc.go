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
// looplab/fsm callbacks cannot return errors, an already-cancelled context
// wedges an FSM, and AvailableTransitions is unordered. The engine uses no
// callbacks, always moves the FSM with context.Background after the
// journal write succeeded, and keeps its own ordered transition table; the
// looplab FSM checks legality (Can) and draws the graph. Steps after the
// commit point and the rollback step get a context that is never
// cancelled, so a signal cannot leave them half-done.
package fsm
