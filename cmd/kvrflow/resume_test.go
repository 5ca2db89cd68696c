package main

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_KilledHalfWayResumes kills a real copy-mode restore of a
// backup of n 64 MiB files (1 GiB; 384 MiB under -short) with SIGKILL
// right after Write journaled about half of them complete, then runs the
// same restore again: it recovers the killed run (the old database back,
// the partial staging kept as trash), reuses the files journaled
// complete, and transfers at most 55 % of the backup's bytes; the
// database is the backup's and no trash is left.
func TestRestore_KilledHalfWayResumes(t *testing.T) {
	n, killAt := 16, 9
	if testing.Short() {
		n, killAt = 6, 4
	}
	f := newFixture(t, 200, 300)
	for i := range n {
		if err := sampledb.AddFile(f.backup, fmt.Sprintf("%06d.blob", 900+i), 64<<20, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// Each 64 MiB file completed is a batch note of its own (NoteBytes):
	// killed after note killAt, at least killAt-1 of them are journaled
	// (one note may hold only the database's small files).
	r := cli(t, []string{fault.EnvVar + "=" + spec(fmt.Sprintf("write.batch-noted@%d", killAt), "crash")}, f.restoreArgs("--mode", "copy")...)
	if r.signal != syscall.SIGKILL {
		t.Fatalf("want the restore killed by SIGKILL after note %d, got %s", killAt, r)
	}
	var doc restoreDoc
	decode(t, mustRun(t, exitOK, nil, f.restoreArgs("--mode", "copy", "--json")...), &doc)
	sum := doc.Summary
	share := float64(sum.Transferred) / float64(sum.Bytes)
	t.Logf("the re-run after a kill at note %d of %d files: %d of %d bytes transferred (%.1f %%), %d resumed",
		killAt, n, sum.Transferred, sum.Bytes, 100*share, sum.Resumed)
	if doc.Outcome != steps.OutcomeCommitted || sum.Resumed == 0 || share > 0.55 {
		t.Fatalf("the re-run: %+v; want it committed having transferred at most 55 %% of the bytes", doc)
	}
	if got := f.which(t); got != "new" {
		t.Fatalf("after the resumed restore the database holds the %s contents", got)
	}
	if trash, _ := filepath.Glob(filepath.Join(f.db+".kvrflow", "trash-*")); len(trash) != 0 {
		t.Errorf("trash left after the resumed restore: %v", trash)
	}
}

// TestRestore_KilledMidFileResumes kills a real copy-mode restore of a
// backup holding one 256 MiB file with SIGKILL after its copy's progress
// was journaled at least twice (every 64 MiB, after an fdatasync), then
// runs the same restore again: it continues that file from the last
// offset journaled and transfers at most 55 % of the bytes.
func TestRestore_KilledMidFileResumes(t *testing.T) {
	f := newFixture(t, 200, 300)
	if err := sampledb.AddFile(f.backup, "000999.blob", 256<<20, 5); err != nil {
		t.Fatal(err)
	}
	// Note 3: the third of the big file's progress notes, or the second
	// if the database's small files were journaled on their own first.
	r := cli(t, []string{fault.EnvVar + "=" + spec("write.batch-noted@3", "crash")}, f.restoreArgs("--mode", "copy")...)
	if r.signal != syscall.SIGKILL {
		t.Fatalf("want the restore killed by SIGKILL after note 3, got %s", r)
	}
	var doc restoreDoc
	decode(t, mustRun(t, exitOK, nil, f.restoreArgs("--mode", "copy", "--json")...), &doc)
	sum := doc.Summary
	share := float64(sum.Transferred) / float64(sum.Bytes)
	t.Logf("the re-run after a kill in the middle of a 256 MiB file: %d of %d bytes transferred (%.1f %%), %d resumed", sum.Transferred, sum.Bytes, 100*share, sum.Resumed)
	if doc.Outcome != steps.OutcomeCommitted || share > 0.55 {
		t.Fatalf("the re-run: %+v; want it committed having transferred at most 55 %% of the bytes", doc)
	}
	if got := f.which(t); got != "new" {
		t.Fatalf("after the resumed restore the database holds the %s contents", got)
	}
}
