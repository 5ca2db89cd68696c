package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/internal/chaos"
)

// TestChaos_SelfTestFindsNoFailures runs the operator's self-test with a
// fixed seed: every iteration's invariants hold, the kills hit several
// distinct fault points, recoveries both rolled back and did nothing, and
// each iteration left the database its journal decided.
func TestChaos_SelfTestFindsNoFailures(t *testing.T) {
	n := 24
	if testing.Short() {
		n = 12
	}
	dir := filepath.Join(t.TempDir(), "scratch")
	var doc chaosDoc
	decode(t, mustRun(t, exitOK, nil, "chaos", "--iterations", itoa(n), "--seed", "5", "--dir", dir, "--json"), &doc)
	if doc.Iterations != n || doc.Failures != 0 || doc.ExitCode != exitOK {
		t.Fatalf("chaos: %d iterations, %d failures %v, exit %d", doc.Iterations, doc.Failures, doc.FailureDetails, doc.ExitCode)
	}
	if doc.PointsFired < 3 || doc.RolledBack == 0 {
		t.Errorf("chaos fired %d distinct points and rolled back %d times: the kills did not reach far", doc.PointsFired, doc.RolledBack)
	}
	if len(doc.Log) != n {
		t.Errorf("iterations log has %d entries", len(doc.Log))
	}
	for _, it := range doc.Log {
		if it.Expected == "" || it.Result != it.Expected {
			t.Errorf("iteration %d (%s): the journal decided %q, recovery left %q", it.N, it.Kill, it.Expected, it.Result)
		}
	}
	// It cleans up what it made and leaves the directory it was given.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("scratch dir after chaos: %v, %v", entries, err)
	}
	t.Logf("chaos: %d iterations, %d distinct fault points fired, %d timer kills, rolled forward %d, back %d, failures %d",
		doc.Iterations, doc.PointsFired, doc.KilledByTimer, doc.RolledForward, doc.RolledBack, doc.Failures)
}

func TestChaos_RefusesANonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, exitUsage, nil, "chaos", "--dir", dir, "--iterations", "1")
	if !strings.Contains(r.stderr, "not empty") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(b) != "x" {
		t.Errorf("chaos touched a file it did not make: %q %v", b, err)
	}
}

// TestChaos_SameSeedKillsAtTheSamePointsInTheSameOrder runs chaos twice
// with one seed: the iterations kill at the same fault specs in the same
// order, and the timer kills, which cannot repeat, stand at the same
// iterations and are marked not repeatable.
func TestChaos_SameSeedKillsAtTheSamePointsInTheSameOrder(t *testing.T) {
	kills := func() []chaos.Iteration {
		var doc chaosDoc
		decode(t, mustRun(t, exitOK, nil, "chaos", "--iterations", "10", "--seed", "11", "--dir", filepath.Join(t.TempDir(), "s"), "--json"), &doc)
		return doc.Log
	}
	a, b := kills(), kills()
	if len(a) != 10 || len(b) != 10 {
		t.Fatalf("iterations logged: %d and %d, want 10", len(a), len(b))
	}
	repeatable := 0
	for i := range a {
		timer := strings.HasPrefix(a[i].Kill, "timer")
		switch {
		case a[i].Repeatable == timer:
			t.Errorf("iteration %d: %q marked repeatable=%v", a[i].N, a[i].Kill, a[i].Repeatable)
		case a[i].Repeatable != b[i].Repeatable:
			t.Errorf("iteration %d: the first run killed with %q, the second with %q", a[i].N, a[i].Kill, b[i].Kill)
		case a[i].Repeatable && a[i].Kill != b[i].Kill:
			t.Errorf("iteration %d: the first run killed at %q, the second at %q", a[i].N, a[i].Kill, b[i].Kill)
		case a[i].Repeatable:
			repeatable++
		}
	}
	if repeatable == 0 {
		t.Errorf("no iteration killed at a fault point: nothing was compared")
	}
}

// TestChaos_KeepSaysWhereAndLogsGoToAFile runs chaos with --keep in its
// default temporary directory: the output names the directory kept, which
// exists and holds chaos.log with the restores' logs, and stderr holds
// none of them.
func TestChaos_KeepSaysWhereAndLogsGoToAFile(t *testing.T) {
	r := mustRun(t, exitOK, nil, "chaos", "--iterations", "3", "--seed", "4", "--keep")
	var kept, logFile string
	for _, line := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "scratch directory kept"); ok {
			kept = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "log "); ok {
			logFile = strings.TrimSpace(v)
		}
	}
	if kept == "" || !filepath.IsAbs(kept) {
		t.Fatalf("chaos --keep does not say where the scratch directory is:\n%s", r)
	}
	t.Cleanup(func() { os.RemoveAll(kept) })
	if fi, err := os.Stat(kept); err != nil || !fi.IsDir() {
		t.Fatalf("the scratch directory chaos says it kept: %v", err)
	}
	if logFile != filepath.Join(kept, chaos.LogName) {
		t.Errorf("chaos names the log %q, want %s", logFile, filepath.Join(kept, chaos.LogName))
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "restore started") || !strings.Contains(string(b), "fault point fired") {
		t.Errorf("%s does not hold the restores' logs (%v):\n%s", logFile, err, b)
	}
	for _, child := range []string{"restore started", "fault point fired", "recovering", "restored "} {
		if strings.Contains(r.stderr, child) {
			t.Errorf("stderr holds the restores' log lines (%q):\n%s", child, r.stderr)
		}
	}

	dir := filepath.Join(t.TempDir(), "scratch")
	var doc chaosDoc
	decode(t, mustRun(t, exitOK, nil, "chaos", "--iterations", "1", "--seed", "4", "--dir", dir, "--keep", "--json"), &doc)
	if doc.Kept != dir || doc.LogFile != filepath.Join(dir, chaos.LogName) {
		t.Errorf("chaos --keep --json: kept %q, log %q; want %s", doc.Kept, doc.LogFile, dir)
	}
	if _, err := os.Stat(doc.LogFile); err != nil {
		t.Errorf("the log chaos --json names: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
