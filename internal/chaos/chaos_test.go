package chaos_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvrflow/kvrflow/internal/chaos"
)

func TestSummary_CountsKillsOutcomesAndFailures(t *testing.T) {
	var s chaos.Summary
	for _, it := range []chaos.Iteration{
		{N: 1, Kill: "fs.write:crash@2", Killed: true, Outcome: "rolled back", Result: "old"},
		{N: 2, Kill: chaos.FailSpec + ",restore.rollback.begin:crash@1", Killed: true, Outcome: "rolled back", Result: "old"},
		{N: 3, Kill: "timer 3ms", Killed: true, Outcome: "nothing", Result: "old"},
		{N: 4, Kill: "timer 90ms", Outcome: "nothing", Result: "new"},
		{N: 5, Kill: "fs.write:crash@1", Killed: true, Outcome: "rolled forward", Failure: "boom"},
	} {
		s.Add(it)
	}
	want := chaos.Summary{Iterations: 5, PointsFired: 2, KilledByTimer: 1, Completed: 1, RolledForward: 1, RolledBack: 2, NothingToDo: 2, Failures: 1}
	got := s
	got.Fired, got.Log, got.FailureDetails = nil, nil, nil
	if got.Iterations != want.Iterations || got.PointsFired != want.PointsFired || got.KilledByTimer != want.KilledByTimer ||
		got.Completed != want.Completed || got.RolledForward != want.RolledForward || got.RolledBack != want.RolledBack ||
		got.NothingToDo != want.NothingToDo || got.Failures != want.Failures {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	if s.Fired["fs.write"] != 2 || s.Fired["restore.rollback.begin"] != 1 || len(s.Log) != 5 {
		t.Errorf("fired %v, %d logged", s.Fired, len(s.Log))
	}
	if len(s.FailureDetails) != 1 || s.FailureDetails[0] != "iteration 5 (fs.write:crash@1): boom" {
		t.Errorf("failure details %q", s.FailureDetails)
	}
}

func TestScratch_RefusesANonEmptyDirAndRemovesOnlyWhatItMade(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := chaos.Scratch(dir, false); !errors.Is(err, chaos.ErrNotEmpty) {
		t.Fatalf("Scratch of a non-empty dir: %v, want ErrNotEmpty", err)
	}
	empty := filepath.Join(dir, "new")
	got, cleanup, err := chaos.Scratch(empty, false)
	if err != nil || got != empty {
		t.Fatalf("Scratch(%s) = %s, %v", empty, got, err)
	}
	for _, n := range []string{"work", "mine"} {
		if err := os.Mkdir(filepath.Join(empty, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cleanup()
	entries, err := os.ReadDir(empty)
	if err != nil || len(entries) != 1 || entries[0].Name() != "mine" {
		t.Errorf("after cleanup %s holds %v (%v), want only mine", empty, entries, err)
	}
}
