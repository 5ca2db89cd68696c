package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

func TestExitCode_MapsErrorsMostSpecificFirst(t *testing.T) {
	rolledBack := func(cause error) error {
		return fmt.Errorf("%w: %w", fsm.ErrRolledBack, &fsm.StepError{Step: "precheck", Err: cause})
	}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"rolled back", rolledBack(syscall.EIO), 1},
		{"rolled back on cancel", rolledBack(context.Canceled), 1},
		{"usage", usagef("bad --mode %q", "x"), 2},
		{"bad fault spec", fmt.Errorf("parse: %w", fault.ErrBadSpec), 2},
		{"bad source", fmt.Errorf("%w: no manifest", steps.ErrBadSource), 2},
		{"bad source, rolled back", rolledBack(fmt.Errorf("%w: no manifest", steps.ErrBadSource)), 2},
		{"bad path", fmt.Errorf("%w: parent missing", steps.ErrBadPath), 2},
		{"no space, rolled back", rolledBack(steps.ErrNoSpace), 2},
		{"db in use", fmt.Errorf("%w: LOCK held", steps.ErrInUse), 3},
		{"db in use, rolled back", rolledBack(steps.ErrInUse), 3},
		{"journal locked", fmt.Errorf("open: %w", journal.ErrLocked), 3},
		{"in use beats bad path", errors.Join(steps.ErrBadPath, steps.ErrInUse), 3},
		{"journal corrupt", fmt.Errorf("open: %w", journal.ErrCorrupt), 4},
		{"journal newer", journal.ErrNewerSchema, 4},
		{"inconsistent", &fsm.StepError{Step: "finish", Err: steps.ErrInconsistent}, 4},
		{"journal verify found a problem", fmt.Errorf("%w: 1 problem", errVerifyFailed), 4},
		{"journal beats bad input", errors.Join(journal.ErrCorrupt, steps.ErrBadSource), 4},
		{"locked beats corrupt", errors.Join(journal.ErrCorrupt, journal.ErrLocked), 3},
		{"step error after commit, left in flight", fmt.Errorf("%w: %w", fsm.ErrInFlight, &fsm.StepError{Step: "finish", Err: syscall.EIO}), 5},
		{"left in flight", fmt.Errorf("%w: %w", fsm.ErrInFlight, &fsm.StepError{Step: "rollback", Err: syscall.EIO}), 5},
		{"left in flight beats bad input (corrupt backup found by Write, rollback failed)", errors.Join(fsm.ErrInFlight, steps.ErrBadSource), 5},
		{"bad option", fmt.Errorf("%w: --verify", steps.ErrBadOption), 2},
		{"journal not found is not usage by itself", journal.ErrNotFound, 1},
		{"failed before any run began", fmt.Errorf("open journal: %w", syscall.EIO), 1},
		{"anything else", fs.ErrPermission, 1},
		{"cluster aborted", cluster.ErrAborted, 1},
		{"cluster aborted for a node's bad source", errors.Join(cluster.ErrAborted, steps.ErrBadSource), 1},
		{"cluster aborted, a node's db in use", errors.Join(cluster.ErrAborted, steps.ErrInUse), 1},
		{"cluster undecided", fmt.Errorf("etcd: %w", cluster.ErrUndecided), 5},
		{"etcd refused the client, run undecided", refusedError{fmt.Errorf("%w: %w", cluster.ErrUndecided, errors.New("permission denied")), "hint"}, 2},
		{"cluster bad plan", fmt.Errorf("--plan p.json: %w: no nodes", cluster.ErrBadPlan), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestUsageError_KeepsItsCauseAndMessage(t *testing.T) {
	cause := errors.New("flag provided but not defined: -x")
	err := asUsage(cause)
	if !errors.Is(err, errUsage) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("asUsage(%v) = %v", cause, err)
	}
}
