package kvrflow

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestPrepare_HoldsLocksThenCommitsOrRollsBack: a prepare-only run stops
// in prepared with DB untouched and kvrflow's lock held (another restore
// is refused, in use); Decide commits or rolls back; Restore with
// Options.Prepare returns the run prepared, and recovery without a
// decider leaves it so (ErrUndecided, in flight) until Resolve decides.
func TestPrepare_HoldsLocksThenCommitsOrRollsBack(t *testing.T) {
	for _, commit := range []bool{true, false} {
		f := newFixture(t, vfs.Default, t.TempDir())
		opts := f.opts()
		opts.Prepare = "r/1/x"
		p, err := Prepare(context.Background(), opts)
		must(t, err)
		if p.Result.Run.State != steps.StatePrepared {
			t.Fatalf("run in %s, want prepared", p.Result.Run.State)
		}
		if _, err := testutil.TryReadDB(vfs.Default, f.db); err == nil {
			t.Fatal("prepared: DB's LOCK is not held (a server could open the database)")
		}
		if _, err := Restore(context.Background(), f.opts()); !errors.Is(err, steps.ErrInUse) {
			t.Fatalf("a restore while prepared: %v, want ErrInUse", err)
		}
		res, err := p.Decide(context.Background(), commit)
		want, outcome := f.old, steps.OutcomeRolledBack
		if commit {
			want, outcome = f.new, steps.OutcomeCommitted
			must(t, err)
		} else if !IsRolledBack(err) {
			t.Fatalf("abort: %v, want rolled back", err)
		}
		if res.Run.Outcome != outcome || !testutil.Equal(testutil.ReadDB(t, vfs.Default, f.db), want) {
			t.Fatalf("commit %v: outcome %s", commit, res.Run.Outcome)
		}
		if _, err := p.Decide(context.Background(), commit); !errors.Is(err, ErrClosed) {
			t.Fatalf("a second Decide: %v, want ErrClosed", err)
		}
	}

	f := newFixture(t, vfs.Default, t.TempDir())
	opts := f.opts()
	opts.Prepare = "r/2/y"
	res, err := Restore(context.Background(), opts)
	must(t, err)
	if res.Run.State != steps.StatePrepared {
		t.Fatalf("Restore with Prepare: run in %s", res.Run.State)
	}
	if _, err := Recover(context.Background(), f.opts()); !errors.Is(err, fsm.ErrUndecided) || !errors.Is(err, fsm.ErrInFlight) {
		t.Fatalf("recover without a decider: %v", err)
	}
	runs, err := PreparedRuns(f.opts())
	if err != nil || len(runs) != 1 || runs[0].Tag != "r/2/y" {
		t.Fatalf("PreparedRuns = %v, %v", runs, err)
	}
	if r, err := ClusterRun(f.opts(), "r/2/y"); err != nil || r == nil || r.ID != runs[0].ID {
		t.Fatalf("ClusterRun = %v, %v", r, err)
	}
	if _, err := Resolve(context.Background(), f.opts(), true); err != nil {
		t.Fatal(err)
	}
	if !testutil.Equal(testutil.ReadDB(t, vfs.Default, f.db), f.new) {
		t.Fatal("resolved commit: DB is not the backup's")
	}
}

// TestPrepare_CommitCrashedAnywhereIsRedone: a cluster node's commit,
// decided, crashed at every point of Commit and Finish (each file-system
// point of the exchange plan and of the two-rename plan, the journal's
// commits), then resolved again: DB is the new database, complete; never
// rolled back, never mixed.
func TestPrepare_CommitCrashedAnywhereIsRedone(t *testing.T) {
	points := []string{"restore.prepared.begin", "restore.prepared.end", "restore.commit.begin", "restore.commit.end",
		"restore.finish.begin", "fs.before-exchange", "fs.after-exchange", "fs.before-rename", "fs.after-rename",
		"fs.before-dir-sync", "fs.after-dir-sync", "fs.before-remove", "fs.after-remove"}
	hits := 3 // each point's first three hits
	if testing.Short() {
		hits = 1
	}
	for _, noExchange := range []bool{false, true} {
		for _, point := range points {
			for n := 1; n <= hits; n++ {
				spec := point + ":crash@" + string(rune('0'+n))
				f := newFixture(t, vfs.Default, t.TempDir())
				opts := f.opts()
				opts.NoExchange = noExchange
				opts.Prepare = "r/1/z"
				p, err := Prepare(context.Background(), opts)
				must(t, err)
				p.Close()
				set, err := fault.Parse(spec)
				must(t, err)
				fired := ""
				set.SetCrash(func(pt string) { panic(crashPanic(pt)) })
				func() {
					defer func() {
						if r := recover(); r != nil {
							c, ok := r.(crashPanic)
							if !ok {
								panic(r)
							}
							fired = string(c)
						}
					}()
					o := f.opts()
					o.NoExchange, o.Faults = noExchange, set
					_, err = Resolve(context.Background(), o, true)
				}()
				if fired == "" {
					must(t, err)
				}
				o := f.opts()
				o.NoExchange = noExchange
				if _, err := Resolve(context.Background(), o, true); err != nil {
					t.Fatalf("%s (no exchange %v): resolve again: %v", spec, noExchange, err)
				}
				if !testutil.Equal(testutil.ReadDB(t, vfs.Default, f.db), f.new) {
					t.Fatalf("%s (no exchange %v, fired %q): DB is not the backup's", spec, noExchange, fired)
				}
				if runs, err := PreparedRuns(f.opts()); err != nil || len(runs) != 0 {
					t.Fatalf("%s: left in flight: %v %v", spec, runs, err)
				}
			}
		}
	}
}

type crashPanic string
