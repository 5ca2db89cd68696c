package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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

func itoa(n int) string { return strconv.Itoa(n) }
