package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvrflow/kvrflow/internal/fsx"

	"github.com/kvrflow/kvrflow/fsm"
)

// Undo is the undo workflow: the newest kept database of this journal
// (Work/previous-JID-N, kept by a restore with KeepOld or by an earlier
// undo) takes DB's place, and the database it displaces is kept in turn
// as previous-JID-M, M the undo's run: undo twice is a redo. It commits
// through the same protocol as a restore (commit.go); its commit point is
// entering finish. Nothing is ever removed: Rollback puts both databases
// back where they were.
var Undo = fsm.MustDefine(fsm.Definition{
	Name:  "undo",
	Start: StateNew,
	Transitions: []fsm.Transition{
		{Event: "start", From: []string{StateNew}, To: StatePrecheck},
		{Event: "checked", From: []string{StatePrecheck}, To: StateCommit},
		{Event: "committed", From: []string{StateCommit}, To: StateFinish},
		{Event: "finished", From: []string{StateFinish}, To: StateDone},
		{Event: "fail", From: []string{StatePrecheck, StateCommit}, To: StateRollback},
		{Event: "abort", From: []string{StateNew, StatePrecheck, StateCommit}, To: StateRollback},
		{Event: "rolled_back", From: []string{StateRollback}, To: StateRolledBack},
	},
	Forward: map[string]string{
		StateNew: "start", StatePrecheck: "checked", StateCommit: "committed", StateFinish: "finished", StateRollback: "rolled_back",
	},
	Terminal:    map[string]string{StateDone: OutcomeCommitted, StateRolledBack: OutcomeRolledBack},
	FailEvent:   "fail",
	AbortEvent:  "abort",
	Rollback:    StateRollback,
	CommitPoint: StateFinish,
	Permanent:   Restore.Permanent,
})

// Kinds of run, each with its workflow.
const (
	KindRestore = "restore"
	KindUndo    = "undo"
)

// Workflows maps a run's kind to its workflow.
var Workflows = map[string]*fsm.Definition{KindRestore: Restore, KindUndo: Undo}

// ErrNothingKept is returned by the undo's Precheck when the journal keeps
// no database for DB (a restore keeps one with --keep-old).
var ErrNothingKept = errors.New("no kept database to bring back")

// UndoDetails is journaled when the undo's Precheck passes.
type UndoDetails struct {
	Previous *Kept  `json:"previous"` // the kept database brought back
	FromRun  uint64 `json:"from_run"` // the run that kept it
	Target   string `json:"target"`   // what DB held
	Journal  string `json:"journal"`  // the journal's id
	DBLock   bool   `json:"db_lock"`  // the database's LOCK is held
	Kept     int    `json:"kept"`     // kept databases of this journal before the undo
}

// UndoSteps returns the step of each state of the undo workflow, bound to
// env.
func (e *Env) UndoSteps() map[string]fsm.Step {
	return map[string]fsm.Step{
		StatePrecheck: e.undoPrecheck,
		StateCommit:   e.undoCommit,
		StateFinish:   e.undoFinish,
		StateRollback: e.undoRollback,
	}
}

// StepsOf returns the steps of the workflow of kind, bound to env.
func (e *Env) StepsOf(kind string) map[string]fsm.Step {
	switch kind {
	case KindUndo:
		return e.UndoSteps()
	case KindPurge:
		// Resumed after a crash: it removes what its note lists; with no
		// note yet, nothing (no cutoff is older than the zero time).
		return e.PurgeSteps(time.Time{}, "")
	}
	return e.Steps()
}

// undoPrecheck finds the newest kept database, checks the paths, and
// takes the LOCK of DB and of the kept database, held until the run ends.
// It changes nothing.
func (e *Env) undoPrecheck(_ context.Context, _ *fsm.Run) (any, error) {
	if err := CheckDBPath(e.FS, e.Layout); err != nil {
		return nil, err
	}
	if err := CheckWork(e.FS, e.Layout); err != nil {
		return nil, err
	}
	if err := CheckForeign(e.FS, e.Layout, e.jid()); err != nil {
		return nil, err
	}
	target, err := CheckTarget(e.FS, e.Layout, true)
	if err != nil {
		return nil, err
	}
	kept, _, err := ListKept(e.FS, e.Layout, e.Journal)
	if err != nil {
		return nil, err
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%w: the journal %s keeps no database for %s (restore --keep-old keeps the one it replaces)", ErrNothingKept, e.Journal.Path(), e.Layout.DB)
	}
	k := kept[len(kept)-1]
	if err := e.lockDB(); err != nil {
		return nil, err
	}
	l, err := e.lockDir(k.Path)
	if err != nil {
		return nil, err
	}
	if l != nil && e.dbLock != nil {
		e.dbLock = multiCloser{e.dbLock, l}
	} else if l != nil {
		e.dbLock = l
	}
	return UndoDetails{Previous: &Kept{Path: k.Path, ID: k.ID}, FromRun: k.Run, Target: target, Journal: e.jid(),
		DBLock: e.dbLock != nil, Kept: len(kept)}, nil
}

// UndoMove is the note the undo's Commit journals before it moves the
// kept database to the run's staging name: from there it is swapped in,
// and while the run is in flight its journal's run directory shows it
// (another journal, and Clean, see a run in flight).
type UndoMove struct {
	From string      `json:"undo_move_from"`
	To   string      `json:"undo_move_to"`
	ID   *fsx.FileID `json:"undo_move_id,omitempty"`
}

// undoCommit moves the kept database to the run's staging name, sets
// aside whatever stranger sits at the run's own kept name, then makes the
// kept database DB (see swapIn).
func (e *Env) undoCommit(_ context.Context, r *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	if n.previous == nil {
		return nil, fmt.Errorf("%w: undo run %d has no kept database in its record", ErrInconsistent, e.RunID)
	}
	mv := UndoMove{From: n.previous.Path, To: e.Layout.Staging(e.jid(), e.RunID), ID: n.previous.ID}
	if err := r.Note(mv); err != nil {
		return nil, err
	}
	if err := e.clearTarget(mv.To); err != nil {
		return nil, err
	}
	if err := e.FS.RenameDurable(mv.From, mv.To); err != nil {
		return nil, err
	}
	if err := e.clearTarget(e.Layout.Previous(e.jid(), e.RunID)); err != nil {
		return nil, err
	}
	return e.swapIn(r, mv.To, mv.ID)
}

// undoFinish keeps the displaced database as previous-JID-M, whatever DB
// held (an undo removes nothing).
func (e *Env) undoFinish(_ context.Context, _ *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	n.target = ""
	return e.finishPlan(n, true, nil)
}

// undoRollback undoes what the disk shows of the commit: DB holds what it
// held, the kept database goes back to its name. Nothing is removed.
func (e *Env) undoRollback(_ context.Context, _ *fsm.Run) (any, error) {
	var d RollbackDetails
	n, err := e.notes(e.RunID)
	if err != nil {
		return d, err
	}
	var disp disposal
	defer func() { d.Removed, d.Quarantined = disp.removed, disp.quarantined }()
	if n.plan != nil {
		d.Undone = n.plan.Plan
		if err := e.undoPlan(n.plan, &disp); err != nil {
			return d, err
		}
	}
	if mv := n.undoMove; mv != nil {
		toOK, err1 := e.FS.Exists(mv.To)
		fromOK, err2 := e.FS.Exists(mv.From)
		if err := firstErr(err1, err2); err != nil {
			return d, err
		}
		switch {
		case toOK && !fromOK:
			if err := e.FS.RenameDurable(mv.To, mv.From); err != nil {
				return d, err
			}
		case toOK && fromOK:
			// A power loss left it under both names (in-memory file
			// systems): the copy at the run's name is set aside.
			q, err := e.quarantine(mv.To, "a second copy of "+mv.From+" left by an interrupted move")
			if err != nil {
				return d, err
			}
			disp.quarantined = append(disp.quarantined, q)
		}
	}
	return d, nil
}
