package main

import (
	"errors"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// Exit codes of every command. They are part of kvrflow's interface:
// scripts and service managers act on them, so a code never changes
// meaning.
const (
	exitOK         = 0   // success, or nothing to do
	exitRolledBack = 1   // the command failed; a restore was rolled back: DIR is as before
	exitUsage      = 2   // usage error or bad input; nothing changed
	exitInUse      = 3   // DIR or the journal is in use by another process
	exitJournal    = 4   // the journal is unreadable or inconsistent; nothing done
	exitInFlight   = 5   // a run is left in flight; kvrflow recover finishes it
	exitSignal     = 130 // a second SIGINT or SIGTERM stopped the process at once
)

// exitCodeHelp is the table printed by kvrflow --help.
const exitCodeHelp = `Exit codes:
  0  success, or nothing to do
  1  the command failed; a failed restore was rolled back: DIR holds the database
     it held before
  2  usage error or bad input (bad flag, bad fault spec, invalid backup, bad path,
     not enough space, bad cluster plan, etcd refusing the credentials): nothing
     changed
  3  DIR or its journal is in use by another process
  4  the journal is unreadable or inconsistent, or DIR contradicts it, or another
     journal has a run in flight on DIR: kvrflow stops and changes nothing more
     (a run it was finishing stays in flight until an operator resolves it)
  5  a step and its rollback (or a step after the commit point) kept failing: the
     run is left in flight in the journal; 'kvrflow recover --db DIR' finishes it.
     Or a cluster node's run is prepared and etcd has not decided it (or does not
     answer): it stays prepared; the cluster agent finishes it as etcd decides;
     cluster restore: no outcome in its time (the state is in etcd: run it again)
  130  a second SIGINT or SIGTERM stopped the process at once (the first rolls
     back): a run may be left in flight; 'kvrflow recover --db DIR' finishes it`

// errUsage marks a command-line error. Commands make one with usagef or
// asUsage; exitCode maps it to 2.
var errUsage = errors.New("usage error")

// errVerifyFailed marks a journal verify that found a problem, or could not
// check the journal's hash chains at all; exitCode maps it to 4.
var errVerifyFailed = errors.New("journal verification failed")

// usageError is a command-line error. Its message is the cause's alone;
// it matches both errUsage and the cause.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{errUsage, e.err} }

// asUsage marks err, which must not be nil, as a usage error.
func asUsage(err error) error { return usageError{err} }

// exitCode maps the error a command returned to the process's exit code.
// The more specific classes are checked first: a restore that failed its
// precheck on a bad source is rolled back too, but the useful answer is
// "bad input" (2), not "rolled back" (1). The order is in use (3), journal
// (4), left in flight (5), bad input (2), anything else (1): an error that
// did not leave a run in flight left DIR as it was.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errEtcdRefused):
		return exitUsage
	case errors.Is(err, cluster.ErrAborted):
		// A cluster restore aborted: every node kept its old database,
		// whatever made a node vote abort (a bad source among them).
		return exitRolledBack
	case errors.Is(err, steps.ErrInUse), errors.Is(err, journal.ErrLocked):
		return exitInUse
	case errors.Is(err, journal.ErrCorrupt), errors.Is(err, journal.ErrNewerSchema), errors.Is(err, steps.ErrInconsistent),
		errors.Is(err, steps.ErrForeign), errors.Is(err, errVerifyFailed):
		return exitJournal
	case errors.Is(err, fsm.ErrInFlight), errors.Is(err, fsm.ErrUndecided), errors.Is(err, cluster.ErrUndecided):
		// Before bad input: Write finds a corrupt backup after staging
		// exists, and if the rollback then fails the run is in flight,
		// not "nothing changed". Undecided: a cluster node's run stays
		// prepared (cluster.ErrUndecided matches fsm.ErrUndecided).
		return exitInFlight
	case errors.Is(err, errUsage), errors.Is(err, fault.ErrBadSpec), errors.Is(err, steps.ErrBadSource),
		errors.Is(err, steps.ErrBadPath), errors.Is(err, steps.ErrNoSpace), errors.Is(err, steps.ErrBadOption),
		errors.Is(err, steps.ErrNothingKept), errors.Is(err, cluster.ErrBadPlan),
		errors.Is(err, cluster.ErrNotFound), errors.Is(err, cluster.ErrUntrusted):
		// Untrusted here: nothing was published (an agent's is
		// undecided, 5, above).
		return exitUsage
	default:
		return exitRolledBack
	}
}
