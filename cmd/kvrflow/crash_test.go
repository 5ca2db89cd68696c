package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_KilledAtFaultPointRecoversOldOrNew kills a real kvrflow
// restore with SIGKILL at named points (the crash action), then runs
// kvrflow recover and checks the database is the old one or the backup's,
// complete, key by key, with nothing left in flight. want is what the
// commit point decides: killed before the journal holds commit
// -committed-> finish, recovery rolls back (old); after it, it finishes
// (new).
func TestRestore_KilledAtFaultPointRecoversOldOrNew(t *testing.T) {
	for _, tc := range []struct {
		point string
		want  string
	}{
		{"step.precheck.end", "old"},
		{"step.write.begin", "old"},
		{"fs.write@2", "old"},
		{"fs.after-file-sync@3", "old"},
		{"journal.after-commit@3", "old"},
		{"step.verify.end", "old"},
		{"fs.before-exchange", "old"},
		{"fs.after-exchange", "old"},
		{"step.commit.end", "old"},
		{"step.finish.begin", "new"},
		{"fs.before-remove", "new"},
		{"step.finish.end", "new"},
	} {
		for _, mode := range []string{"copy", "auto"} {
			t.Run(tc.point+"/"+mode, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, 200, 300)
				r := cli(t, []string{fault.EnvVar + "=" + spec(tc.point, "crash")}, f.restoreArgs("--mode", mode)...)
				if r.signal != syscall.SIGKILL {
					t.Fatalf("want the restore killed by SIGKILL at %s, got %s", tc.point, r)
				}
				if inFlight := status(t, f.db).InFlight; len(inFlight) != 1 {
					t.Fatalf("after the kill, status shows %d runs in flight, want 1", len(inFlight))
				}
				checkRecovers(t, f, tc.want)
			})
		}
	}
}

// TestRestore_KilledInEachCommitPlanRecovers is the kill matrix of the
// commit plans other than the exchange, on the real disk: the two-rename
// plan (--no-exchange: DB to old-JID-N, then staging to DB) and the fresh
// plan (no DB before: staging renamed to DB, undone by renaming it back).
// Each kill is at a point of the commit or around it, and the outcome is
// the one the commit point decides.
func TestRestore_KilledInEachCommitPlanRecovers(t *testing.T) {
	for _, tc := range []struct {
		plan  string
		point string
		want  string
	}{
		{"rename", "step.commit.begin", "old"},
		{"rename", "fs.before-rename@1", "old"},
		{"rename", "fs.after-rename@1", "old"},
		{"rename", "fs.before-rename@2", "old"},
		{"rename", "fs.after-rename@2", "old"},
		{"rename", "step.commit.end", "old"},
		{"rename", "step.finish.begin", "new"},
		{"rename", "fs.before-remove", "new"},
		{"rename", "step.finish.end", "new"},
		{"fresh", "step.commit.begin", "old"},
		{"fresh", "fs.before-rename@1", "old"},
		{"fresh", "fs.after-rename@1", "old"},
		{"fresh", "step.commit.end", "old"},
		{"fresh", "step.finish.begin", "new"},
		{"fresh", "step.finish.end", "new"},
	} {
		t.Run(tc.plan+"/"+tc.point, func(t *testing.T) {
			t.Parallel()
			old := 200
			extra := []string{"--no-exchange"}
			if tc.plan == "fresh" {
				old, extra = 0, nil
			}
			f := newFixture(t, old, 300)
			r := cli(t, []string{fault.EnvVar + "=" + spec(tc.point, "crash")}, f.restoreArgs(extra...)...)
			if r.signal != syscall.SIGKILL {
				t.Fatalf("want the restore killed by SIGKILL at %s, got %s", tc.point, r)
			}
			if tc.plan == "fresh" && tc.want == "old" {
				mustRun(t, exitOK, nil, "recover", "--db", f.db)
				if _, err := os.Stat(f.db); !os.IsNotExist(err) {
					t.Fatalf("a restore into a new directory rolled back, but %s exists (%v)", f.db, err)
				}
				mustRun(t, exitOK, nil, f.restoreArgs()...)
				if got := f.which(t); got != "new" {
					t.Fatalf("a restore after the rollback left the %s contents", got)
				}
				return
			}
			checkRecovers(t, f, tc.want)
		})
	}
}

// spec returns the fault spec doing action at point, written POINT or
// POINT@N for the N-th hit: POINT:ACTION[@N].
func spec(point, action string) string {
	name, n, ok := strings.Cut(point, "@")
	if !ok {
		return name + ":" + action
	}
	return name + ":" + action + "@" + n
}

// checkRecovers runs kvrflow recover on the fixture after a kill and
// checks the database is want ("old", "new", or "" for either), then
// that a new restore succeeds.
func checkRecovers(t *testing.T, f *fixture, want string) {
	t.Helper()
	var doc recoverJSON
	decode(t, mustRun(t, exitOK, nil, "recover", "--db", f.db, "--json"), &doc)
	got := f.which(t)
	if want != "" && got != want {
		t.Errorf("after recovery the database holds the %s contents, want %s", got, want)
	}
	outcome := map[string]string{"old": steps.OutcomeRolledBack, "new": steps.OutcomeCommitted}[got]
	for _, rec := range doc.Recovered {
		if rec.Run.Outcome != outcome || rec.Run.InFlight() {
			t.Errorf("recovered %+v, want outcome %s", rec, outcome)
		}
	}
	st := status(t, f.db)
	if len(st.InFlight) != 0 || len(st.Leftovers) != 0 {
		t.Errorf("after recovery status shows in flight %+v, leftovers %v", st.InFlight, st.Leftovers)
	}
	if r := mustRun(t, exitOK, nil, "recover", "--db", f.db); !strings.Contains(r.stdout, "nothing to recover") {
		t.Errorf("a second recover did something:\n%s", r.stdout)
	}
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	if got := f.which(t); got != "new" {
		t.Errorf("a restore after recovery left the %s contents", got)
	}
}

// TestRestore_KilledByTimerRecoversOldOrNew kills kvrflow with SIGKILL
// from outside, at a time rather than a named point, while it writes a
// larger backup slowed down by a delay at each buffer written.
func TestRestore_KilledByTimerRecoversOldOrNew(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{fault.EnvVar + "=fs.write:delay=20ms"}, func(p *os.Process) {
		time.Sleep(150 * time.Millisecond)
		if err := p.Kill(); err != nil {
			t.Logf("kill: %v", err)
		}
	})
	if r.signal != syscall.SIGKILL {
		t.Logf("the restore ended before the kill: %s", r)
	}
	checkRecovers(t, f, "")
}

// TestRestore_SIGINTRollsBack interrupts a restore while it writes: the
// context is cancelled, the run rolls back and kvrflow exits 1 with the
// old database in place.
func TestRestore_SIGINTRollsBack(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{fault.EnvVar + "=fs.write:delay=20ms"}, func(p *os.Process) {
		time.Sleep(100 * time.Millisecond)
		if err := p.Signal(os.Interrupt); err != nil {
			t.Logf("signal: %v", err)
		}
	})
	switch {
	case r.code == exitRolledBack:
		if got := f.which(t); got != "old" {
			t.Errorf("after the rollback the database holds the %s contents", got)
		}
		if !strings.Contains(r.stderr, "interrupted") || !strings.Contains(r.stderr, "Error: rolled back") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	case r.code == exitOK:
		t.Logf("the restore finished before the interrupt")
	default:
		t.Fatalf("want exit 1 after SIGINT, got %s", r)
	}
	checkJournal(t, f.db)
}

// TestRestore_WhileAnotherRunsExits3 runs a second restore, and status,
// while a slowed-down restore of the same database holds its lock and
// journal: the second restore fails with exit code 3 and changes nothing;
// status reports the database busy (exit 0), its runs unknown.
func TestRestore_WhileAnotherRunsExits3(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{fault.EnvVar + "=fs.write:delay=250ms"}, func(*os.Process) {
		second := cli(t, nil, f.restoreArgs()...)
		if second.code != exitInUse || !strings.Contains(second.stderr, "in use") {
			t.Errorf("a second restore: want exit 3, got %s", second)
		}
		st := cli(t, nil, "status", "--db", f.db)
		if st.code != exitOK || !strings.Contains(st.stdout, "in flight:  unknown") || !strings.Contains(st.stdout, "a kvrflow is working on this database now") {
			t.Errorf("status during a restore: want exit 0 reporting it busy, got %s", st)
		}
	})
	if r.code != exitOK {
		t.Fatalf("the first restore: %s", r)
	}
	if got := f.which(t); got != "new" {
		t.Errorf("database holds the %s contents", got)
	}
}

// startRestore starts kvrflow restore of f with env, waits until it logs
// that the run started, calls during with the process, and returns how
// the restore ended.
func startRestore(t *testing.T, f *fixture, env []string, during func(*os.Process)) result {
	t.Helper()
	cmd, stdout, _ := newCmd(env, f.restoreArgs("--mode", "copy")...)
	cmd.Stderr = nil
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	started := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "restore started") {
				close(started)
			}
		}
		_, _ = io.Copy(&stderr, pipe)
	}()
	select {
	case <-started:
		during(cmd.Process)
	case <-copied:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("kvrflow did not start the restore within 30s")
	}
	<-copied // Wait must not run before the pipe is read to its end
	return ended(t, cmd, stdout, &stderr, cmd.Wait())
}

// newBigFixture is a fixture whose backup is about 10 MiB of random
// values in several tables, so writing it takes many buffers.
func newBigFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := newFixture(tb, 200, 0)
	src := filepath.Join(f.root, "big")
	f.new = makeBigDB(tb, src, 640, 16<<10)
	f.backup = filepath.Join(f.root, "big-backup")
	mustRun(tb, exitOK, nil, "backup", "--db", src, "--to", f.backup)
	return f
}

// makeBigDB writes n keys with random values of size bytes each to a new
// Pebble database in dir, flushing four times, and returns its contents.
func makeBigDB(tb testing.TB, dir string, n, size int) map[string]string {
	tb.Helper()
	if err := sampledb.Make(nil, dir, sampledb.Spec{Seed: 42, Keys: n, ValueSize: size, Flushes: 4}); err != nil {
		tb.Fatal(err)
	}
	return testutil.ReadDB(tb, vfs.Default, dir)
}

// TestRestore_EveryFaultPointCrashThenRecover is the process-level matrix:
// for every named fault point, a real kvrflow restore is killed there
// (SIGKILL) on the clean path, and again on the rollback path (verify
// fails with EIO, then the crash); kvrflow recover must leave the old or
// the new database, complete, with nothing in flight. A point a path does
// not pass is checked too: that restore must simply succeed (clean path)
// or roll back (rollback path).
func TestRestore_EveryFaultPointCrashThenRecover(t *testing.T) {
	const failFirst = "step.verify.end:eio"
	var fired, total atomic.Int32
	t.Cleanup(func() {
		t.Logf("process matrix: %d fault points x 2 paths, %d kills fired and recovered", len(fault.Points()), fired.Load())
		if total.Load() > 0 && fired.Load() < total.Load()/2 {
			t.Errorf("only %d of %d runs were killed: the matrix misses most points", fired.Load(), total.Load())
		}
	})
	for _, p := range fault.Points() {
		for _, path := range []string{"clean", "rollback"} {
			if path == "rollback" && p.Name == "step.verify.end" {
				continue
			}
			t.Run(p.Name+"/"+path, func(t *testing.T) {
				t.Parallel()
				total.Add(1)
				f := newFixture(t, 100, 150)
				spec := p.Name + ":crash"
				want, wantCode := "new", exitOK
				if path == "rollback" {
					spec, want, wantCode = failFirst+","+spec, "old", exitRolledBack
				}
				r := cli(t, []string{fault.EnvVar + "=" + spec}, f.restoreArgs()...)
				if r.signal != syscall.SIGKILL {
					if r.code != wantCode {
						t.Fatalf("%s not hit, and the restore ended %s, want exit %d", p.Name, r, wantCode)
					}
					if got := f.which(t); got != want {
						t.Fatalf("%s not hit: database holds the %s contents, want %s", p.Name, got, want)
					}
					return
				}
				fired.Add(1)
				checkRecovers(t, f, "")
			})
		}
	}
}
