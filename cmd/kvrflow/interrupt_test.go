package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/sampledb"
)

// bigFileName is the name of the large file addBigFile adds to a backup.
const bigFileName = "000999.blob"

// addBigFile writes a file of size random bytes into f's backup and
// lists it in the manifest, resealed.
func addBigFile(tb testing.TB, f *fixture, size int64) {
	tb.Helper()
	if err := sampledb.AddFile(f.backup, bigFileName, size, 1); err != nil {
		tb.Fatal(err)
	}
}

// TestRestore_SIGINTStopsTheCopyOfALargeFile interrupts a copy-mode
// restore while it copies one large file: the copy stops at the next
// buffer rather than at the end of the file, the run rolls back, kvrflow
// exits 1 with the old database in place and staging removed. How quickly
// is measured by bench/sigint-latency, not asserted here.
func TestRestore_SIGINTStopsTheCopyOfALargeFile(t *testing.T) {
	const size = 256 << 20
	f := newFixture(t, 200, 50)
	addBigFile(t, f, size)
	// A pause per buffer written paces the copy (at least a quarter of a
	// second for the whole file) so that the interrupt reliably arrives
	// before its end on a loaded machine; the copy still checks for the
	// interrupt at every buffer. The fixture's database is a few small
	// files of one buffer each, copied by at most steps.Workers workers
	// at once: by the 16th buffer the copy of the big file has begun.
	w := watch(t, []string{fault.EnvVar + "=fs.write:delay=1ms"}, firedLine("fs.write", 16),
		f.restoreArgs("--mode", "copy", "--log-level", "debug")...)
	if !w.await(t) {
		t.Fatalf("the copy of %s did not begin:\n%s", bigFileName, w.end(t))
	}
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r := w.end(t)
	if r.code != exitRolledBack || r.signal != 0 {
		t.Fatalf("want exit 1 after SIGINT, got %s", r)
	}
	m := regexp.MustCompile(`interrupted after (\d+) of (\d+) bytes`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("stderr does not say how far the copy got:\n%s", r.stderr)
	}
	copied, _ := strconv.ParseInt(m[1], 10, 64)
	total, _ := strconv.ParseInt(m[2], 10, 64)
	t.Logf("the copy stopped: %s", m[0])
	if total != size || copied >= size {
		t.Errorf("the copy stopped after %d of %d bytes: want it stopped before the end of the %d-byte file", copied, total, size)
	}
	if !strings.Contains(r.stderr, "Error: interrupted, rolled back: "+f.db+" holds the database it held before") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("after the rollback the database holds the %s contents", got)
	}
	if left, _ := filepath.Glob(filepath.Join(f.db+".kvrflow", "staging-*")); len(left) != 0 {
		t.Errorf("staging left: %v", left)
	}
	// The partial copy was set aside in one rename (so the process
	// stopped at once), and kvrflow recover removes it by proof.
	trash, _ := filepath.Glob(filepath.Join(f.db+".kvrflow", "trash-*"))
	if len(trash) != 1 {
		t.Fatalf("the partial staging was not set aside: %v", trash)
	}
	if st := status(t, f.db); len(st.InFlight) != 0 {
		t.Errorf("status: in flight %+v", st.InFlight)
	}
	// The database's small files were journaled complete before the
	// interrupt: recover keeps the partial copy for a restore of the
	// same source to resume from, and status says so.
	rec := mustRun(t, exitOK, nil, "recover", "--db", f.db)
	if !strings.Contains(rec.stderr, "kept an interrupted restore's partial copy") {
		t.Errorf("recover:\n%s", rec)
	}
	if st := status(t, f.db); len(st.InFlight) != 0 || len(st.Leftovers) != 0 || len(st.Resumable) != 1 {
		t.Errorf("after recover: in flight %+v, leftovers %v, resumable %v", st.InFlight, st.Leftovers, st.Resumable)
	}
}
