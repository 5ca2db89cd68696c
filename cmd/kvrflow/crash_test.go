package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/fsx"
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
// (new). The journal the kill left must say the same (check.Target.Expect).
func TestRestore_KilledAtFaultPointRecoversTheDatabaseThePointDecides(t *testing.T) {
	for _, tc := range []struct {
		point string
		want  check.Result
	}{
		{"restore.precheck.end", "old"},
		{"restore.write.begin", "old"},
		{"fs.write@2", "old"},
		{"fs.after-file-sync@3", "old"},
		{"journal.after-commit@3", "old"},
		{"restore.verify.end", "old"},
		{"fs.before-exchange", "old"},
		{"fs.after-exchange", "old"},
		{"restore.commit.end", "old"},
		{"restore.finish.begin", "new"},
		{"fs.before-remove", "new"},
		{"restore.finish.end", "new"},
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
// the one the commit point decides; in the fresh plan "old" is no
// database at all.
func TestRestore_KilledInEachCommitPlanRecovers(t *testing.T) {
	for _, tc := range []struct {
		plan  string
		point string
		want  check.Result
	}{
		{"rename", "restore.commit.begin", "old"},
		{"rename", "fs.before-rename@1", "old"},
		{"rename", "fs.after-rename@1", "old"},
		{"rename", "fs.before-rename@2", "old"},
		{"rename", "fs.after-rename@2", "old"},
		{"rename", "restore.commit.end", "old"},
		{"rename", "restore.finish.begin", "new"},
		{"rename", "fs.before-remove", "new"},
		{"rename", "restore.finish.end", "new"},
		{"fresh", "restore.commit.begin", "old"},
		{"fresh", "fs.before-rename@1", "old"},
		{"fresh", "fs.after-rename@1", "old"},
		{"fresh", "restore.commit.end", "old"},
		{"fresh", "restore.finish.begin", "new"},
		{"fresh", "restore.finish.end", "new"},
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
// checks the invariant (package check): the database recovery leaves is
// the one the journal the kill left decides (check.Target.Expect: the
// new one exactly when the commit point record was durable), complete,
// key by key, and the journal agrees; want, what the caller expects from
// the point it killed at, must be that same database. Then status shows
// nothing in flight or left over, a second recover does nothing, and a
// new restore succeeds.
func checkRecovers(t *testing.T, f *fixture, want check.Result) {
	t.Helper()
	tg := f.target()
	expect, err := tg.Expect()
	if err != nil {
		t.Fatal(err)
	}
	if expect != want {
		t.Errorf("the journal the kill left decides the %s database, want %s", expect, want)
	}
	var doc recoverJSON
	decode(t, mustRun(t, exitOK, nil, "recover", "--db", f.db, "--json"), &doc)
	rep, err := tg.Recovered()
	if err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if rep.DB != expect {
		t.Errorf("after recovery the database holds the %s contents; the journal the kill left decided %s", rep.DB, expect)
	}
	outcome := map[check.Result]string{check.Old: steps.OutcomeRolledBack, check.New: steps.OutcomeCommitted}[rep.DB]
	if len(doc.Recovered) > 1 {
		t.Errorf("recovered %d runs, want at most the one killed", len(doc.Recovered))
	}
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

// holdSpec holds the second buffer a copy writes for hold (a pacing delay
// inside kvrflow, at fs.write's second hit), on top of spec. The copy
// worker that writes it sleeps there, so the write step cannot end (nor
// the run leave state write) until hold has passed; waitFired(fs.write,
// 2) in the test sees the restore get there.
func holdSpec(hold time.Duration) string {
	return fault.EnvVar + "=fs.write:delay=" + hold.String() + "@2"
}

// TestRestore_KilledFromOutsideWhileWritingRecoversOld kills kvrflow with
// SIGKILL from outside, not at a point of its own choosing: once one copy
// worker is held at its second buffer, while the others copy on. The
// journal it leaves is in state write, so recovery rolls back: old.
func TestRestore_KilledFromOutsideWhileWritingRecoversOld(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{holdSpec(2 * time.Second)}, firedLine("fs.write", 2), func(p *os.Process) {
		if err := p.Kill(); err != nil {
			t.Errorf("kill: %v", err)
		}
	})
	if r.signal != syscall.SIGKILL {
		t.Fatalf("want the restore killed while it writes: %s", r)
	}
	checkRecovers(t, f, check.Old)
}

// TestRestore_SIGINTRollsBack interrupts a restore while it writes (one
// copy worker held at its second buffer): the context is cancelled, the
// run rolls back and kvrflow exits 1 with the old database in place.
func TestRestore_SIGINTRollsBack(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{holdSpec(time.Second)}, firedLine("fs.write", 2), func(p *os.Process) {
		if err := p.Signal(os.Interrupt); err != nil {
			t.Errorf("signal: %v", err)
		}
	})
	if r.code != exitRolledBack || r.signal != 0 {
		t.Fatalf("want exit 1 after SIGINT, got %s", r)
	}
	if rep, err := f.target().Recovered(); err != nil || rep.DB != check.Old || rep.Outcome != steps.OutcomeRolledBack {
		t.Errorf("after the rollback: %+v, %v; want the old database, rolled back", rep, err)
	}
	if !strings.Contains(r.stderr, "interrupted") || !strings.Contains(r.stderr, "Error: interrupted, rolled back: "+f.db+" holds the database it held before") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	checkJournal(t, f.db)
}

// TestRestore_WhileAnotherRunsExits3 runs a second restore, and status,
// while a slowed-down restore of the same database holds its lock and
// journal: the second restore fails with exit code 3 and changes nothing;
// status reports the database busy (exit 0), its runs unknown.
func TestRestore_WhileAnotherRunsExits3(t *testing.T) {
	f := newBigFixture(t)
	r := startRestore(t, f, []string{fault.EnvVar + "=fs.write:delay=250ms"}, logLine("restore started"), func(*os.Process) {
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

// startRestore starts kvrflow restore of f with env, waits until a line
// of its log matches wait, calls during with the process, and returns how
// the restore ended. The test fails if the restore ends, or 60 s pass,
// before the line.
func startRestore(t *testing.T, f *fixture, env []string, wait func(line string) bool, during func(*os.Process)) result {
	t.Helper()
	w := watch(t, env, wait, f.restoreArgs("--mode", "copy")...)
	if w.await(t) {
		during(w.cmd.Process)
	}
	return w.end(t)
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
// fails with EIO, then the crash). The kill must happen, unless notFired
// lists the point for that path with the reason; a listed point that
// fires fails too, so the list stays true. After a kill, kvrflow recover
// must leave the database the point decides (afterCommit), which the
// journal the kill left must decide too (checkRecovers). A listed point's
// restore must simply succeed (clean path) or roll back (rollback path).
func TestRestore_EveryFaultPointCrashThenRecover(t *testing.T) {
	const failFirst = "restore.verify.end:eio"
	notFired := notFiredPoints(exchangeWorks(t))
	var fired atomic.Int32
	t.Cleanup(func() {
		t.Logf("process matrix: %d fault points x 2 paths, %d kills fired and recovered", len(fault.Points()), fired.Load())
	})
	for _, p := range fault.Points() {
		if wf, _, _ := strings.Cut(p.Name, "."); steps.Workflows[wf] != nil && wf != steps.KindRestore {
			continue // another workflow's points (undo: TestUndo_KilledAtEachPointRecovers; purge: TestQuarantine_PurgeKilled...)
		}
		if strings.HasPrefix(p.Name, "cluster.") {
			continue // a cluster restore's agent and coordinator (package cluster: TestCluster_CrashMatrix)
		}
		for _, path := range []string{"clean", "rollback"} {
			if path == "rollback" && p.Name == "restore.verify.end" {
				continue // the point the rollback path fails at
			}
			t.Run(p.Name+"/"+path, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, 100, 150)
				spec := p.Name + ":crash"
				want, wantCode := check.New, exitOK
				if path == "rollback" {
					spec, want, wantCode = failFirst+","+spec, check.Old, exitRolledBack
				}
				var args []string
				if p.Name == fsx.PointReadBack {
					args = append(args, "--verify", "full") // the only verify that reads back
				}
				r := cli(t, []string{fault.EnvVar + "=" + spec}, f.restoreArgs(args...)...)
				why, listed := notFired[path][p.Name]
				if r.signal != syscall.SIGKILL {
					if !listed {
						t.Fatalf("%s did not fire on the %s path: %s", p.Name, path, r)
					}
					if r.code != wantCode {
						t.Fatalf("%s not hit, and the restore ended %s, want exit %d", p.Name, r, wantCode)
					}
					if got := f.which(t); got != string(want) {
						t.Fatalf("%s not hit: database holds the %s contents, want %s", p.Name, got, want)
					}
					return
				}
				if listed {
					t.Fatalf("%s fired on the %s path, but is listed as not firing there: %s", p.Name, path, why)
				}
				fired.Add(1)
				if path == "clean" && !afterCommit[p.Name] {
					want = check.Old
				}
				checkRecovers(t, f, want)
			})
		}
	}
}

// afterCommit lists the points whose first hit in a clean restore comes
// after the commit point record (commit -committed-> finish) is durable:
// the finish step, which removes the displaced old database. Killed at
// any other point's first hit, the run recovers to the old database.
var afterCommit = map[string]bool{
	"restore.finish.begin": true,
	"restore.finish.end":   true,
	"fs.before-remove":     true,
	"fs.after-remove":      true,
}

// notFiredPoints returns, for each path of the matrix, the points a
// restore of the matrix's fixture (mode auto on one file system, so
// tables are linked; verify checksum, except --verify full for
// fs.read-back) does not pass, and why. exchange says whether the file
// system has renameat2(RENAME_EXCHANGE): the commit plan, and so which
// of the exchange and the rename points fire, depends on it.
func notFiredPoints(exchange bool) map[string]map[string]string {
	clean := map[string]string{
		"restore.rollback.begin": "a restore that succeeds never rolls back",
		"restore.rollback.end":   "a restore that succeeds never rolls back",
	}
	rollback := map[string]string{
		"restore.prepared.begin": "the run fails at verify, before prepared",
		"restore.prepared.end":   "the run fails at verify, before prepared",
		"restore.commit.begin":   "the run fails at verify, before the commit",
		"restore.commit.end":     "the run fails at verify, before the commit",
		"restore.finish.begin":   "the run fails at verify, before the commit",
		"restore.finish.end":     "the run fails at verify, before the commit",
		"fs.before-exchange": "the run fails before the commit; the rollback " +
			"removes staging and swaps nothing",
		"fs.after-exchange": "the run fails before the commit; the rollback " +
			"removes staging and swaps nothing",
		"fs.before-rename": "the run fails before the commit; the rollback renames nothing",
		"fs.after-rename":  "the run fails before the commit; the rollback renames nothing",
	}
	if exchange {
		why := "the commit exchanges DB and staging with one renameat2(RENAME_EXCHANGE), " +
			"no rename (the two-rename plan: TestRestore_KilledInEachCommitPlanRecovers)"
		clean["fs.before-rename"], clean["fs.after-rename"] = why, why
	} else {
		why := "this file system has no renameat2(RENAME_EXCHANGE): the commit renames twice"
		clean["fs.before-exchange"], clean["fs.after-exchange"] = why, why
	}
	return map[string]map[string]string{"clean": clean, "rollback": rollback}
}

// exchangeWorks reports whether the file system of the test's temporary
// directories exchanges two directories atomically.
func exchangeWorks(t *testing.T) bool {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	must(t, os.Mkdir(a, 0o755))
	must(t, os.Mkdir(b, 0o755))
	err := fsx.New(vfs.Default, nil).Exchange(a, b)
	if err != nil && !errors.Is(err, fsx.ErrExchangeUnsupported) {
		t.Fatal(err)
	}
	return err == nil
}
