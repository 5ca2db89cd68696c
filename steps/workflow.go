package steps

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
)

// States of a restore.
const (
	StateNew        = "new"
	StatePrecheck   = "precheck"
	StateClean      = "clean"
	StateWrite      = "write"
	StateVerify     = "verify"
	StatePrepared   = "prepared"
	StateCommit     = "commit"
	StateFinish     = "finish"
	StateDone       = "done"
	StateRollback   = "rollback"
	StateRolledBack = "failed"
)

// Outcomes of a restore run.
const (
	OutcomeCommitted  = "committed"
	OutcomeRolledBack = "rolled_back"
)

// Restore is the restore workflow. The commit point is entering finish:
// the journal record commit -committed-> finish is written only after the
// new database is durably in place; before it recovery rolls back, after
// it recovery finishes.
//
// Between verify and commit is prepared (verify -ready-> prepared
// -decided-> commit), an External state: the new
// database is staged, verified and durable. A restore of a cluster node
// (Env.Prepare set) stops there (fsm.Run.ExecuteUntil) and waits for the
// cluster's decision; recovery asks a Decider whether to commit or roll
// back. Any other restore passes through it at once (its step does
// nothing), and recovery rolls such a run back as from verify
// (PreparedDecider).
var Restore = fsm.MustDefine(fsm.Definition{
	Name:  "restore",
	Start: StateNew,
	Transitions: []fsm.Transition{
		{Event: "start", From: []string{StateNew}, To: StatePrecheck},
		{Event: "checked", From: []string{StatePrecheck}, To: StateClean},
		{Event: "cleaned", From: []string{StateClean}, To: StateWrite},
		{Event: "written", From: []string{StateWrite}, To: StateVerify},
		{Event: "ready", From: []string{StateVerify}, To: StatePrepared},
		// Journals of kvrflow before the prepared state went from verify
		// straight to commit: still a legal record (audit replays them).
		{Event: "verified", From: []string{StateVerify}, To: StateCommit},
		{Event: "decided", From: []string{StatePrepared}, To: StateCommit},
		{Event: "committed", From: []string{StateCommit}, To: StateFinish},
		{Event: "finished", From: []string{StateFinish}, To: StateDone},
		{Event: "fail", From: []string{StatePrecheck, StateClean, StateWrite, StateVerify, StatePrepared, StateCommit}, To: StateRollback},
		{Event: "abort", From: []string{StateNew, StatePrecheck, StateClean, StateWrite, StateVerify, StatePrepared, StateCommit}, To: StateRollback},
		{Event: "rolled_back", From: []string{StateRollback}, To: StateRolledBack},
	},
	Forward: map[string]string{
		StateNew: "start", StatePrecheck: "checked", StateClean: "cleaned", StateWrite: "written",
		StateVerify: "ready", StatePrepared: "decided", StateCommit: "committed", StateFinish: "finished", StateRollback: "rolled_back",
	},
	Terminal:    map[string]string{StateDone: OutcomeCommitted, StateRolledBack: OutcomeRolledBack},
	FailEvent:   "fail",
	AbortEvent:  "abort",
	Rollback:    StateRollback,
	CommitPoint: StateFinish,
	External:    []string{StatePrepared, StateCommit},
	Aliases:     stepAliases("restore", StatePrecheck, StateClean, StateWrite, StateVerify, StateCommit, StateFinish, StateRollback),
	// Not tried again: the disk contradicts the journal; an fsync failed
	// (its data may be lost though a second fsync succeeds: see
	// fsx.ErrSync); another process holds the database.
	Permanent: func(err error) bool {
		return errors.Is(err, ErrInconsistent) || errors.Is(err, fsx.ErrSync) || errors.Is(err, ErrInUse)
	},
})

// stepAliases maps the fault points of kvrflow before workflows had
// names (step.STATE.begin, step.STATE.end) to workflow's.
func stepAliases(workflow string, states ...string) map[string]string {
	m := map[string]string{}
	for _, s := range states {
		for _, end := range []string{"begin", "end"} {
			m["step."+s+"."+end] = workflow + "." + s + "." + end
		}
	}
	return m
}

// Units of Env.Progress.
const (
	ProgressBytes = "bytes"
	ProgressFiles = "files"
)

// Mode says how Write puts files into staging.
type Mode string

// Modes of Write.
const (
	ModeCopy Mode = "copy" // copy every file
	ModeLink Mode = "link" // hard-link .sst files, copy the rest; fail if not on one file system
	ModeAuto Mode = "auto" // link when possible, else copy
)

// ParseMode parses a --mode value.
func ParseMode(s string) (Mode, bool) {
	switch m := Mode(s); m {
	case ModeCopy, ModeLink, ModeAuto:
		return m, true
	}
	return "", false
}

// Env is what the steps of one restore run share. The fields set by the
// caller are inputs; the others are filled by the steps as they run.
type Env struct {
	FS      *fsx.FS
	Layout  Layout
	Journal *journal.Journal
	Log     zerolog.Logger
	RunID   uint64

	Source   string // the backup directory (empty in recovery)
	Engine   string // pebble, rocksdb or auto (default)
	BackupID uint64 // RocksDB backup to restore; 0: the latest
	Mode     Mode
	Verify   string // VerifyChecksum (default, also ""), VerifyFull or VerifySize
	// Force replaces a DB that is neither empty nor a known database; its
	// contents are quarantined at Finish, not removed.
	Force bool
	// KeepOld, if above 0, keeps the database a restore replaces as
	// Work/previous-JID-N instead of removing it, and then keeps at most
	// KeepOld such generations of this journal (the oldest go).
	KeepOld int
	// Progress, if set, is called as Write puts files in staging: done
	// and total are bytes (unit ProgressBytes, copy mode) or files
	// (ProgressFiles, link mode).
	Progress func(done, total int64, unit string)
	// Prepare, if not empty, makes the run a cluster node's: it is
	// journaled with Precheck's details (PrecheckDetails.Prepare), and
	// the run stops in prepared for the cluster's decision. It names the
	// cluster restore (for kvrflow's cluster agent, NAME/ATTEMPT).
	Prepare string

	src    *Source         // loaded by Precheck
	mode   Mode            // resolved by Precheck
	dbLock io.Closer       // held from Precheck to the end of the run
	held   map[string]bool // the LOCK files LockForRecovery holds in dbLock, by path and by "id:DEV:INO"
	// linkFallback is set when a hard link failed with EPERM or EXDEV in
	// ModeAuto: the remaining linkable files are copied.
	linkFallback atomic.Pointer[string]
}

// Steps returns the step of each state, bound to env.
func (e *Env) Steps() map[string]fsm.Step {
	return map[string]fsm.Step{
		StatePrecheck: e.precheck,
		StateClean:    e.clean,
		StateWrite:    e.write,
		StateVerify:   e.verify,
		StatePrepared: e.prepared,
		StateCommit:   e.commit,
		StateFinish:   e.finish,
		StateRollback: e.rollback,
	}
}

// Close releases what the run holds (the database lock). Safe to call
// twice.
func (e *Env) Close() error {
	if e.dbLock == nil {
		return nil
	}
	err := e.dbLock.Close()
	e.dbLock, e.held = nil, nil
	return err
}
