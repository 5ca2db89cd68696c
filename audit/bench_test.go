package audit_test

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/internal/journalgen"
)

// benchRuns is the size of the journal the benchmarks read.
const benchRuns = 10_000

var benchOnce struct {
	sync.Once
	data []byte
	err  error
}

// benchJournal writes, at a new path in b's temporary directory, a copy
// of a journal of benchRuns runs (internal/journalgen: restores committed
// and rolled back, as the engine journals them), built once per process
// on tmpfs when /dev/shm is one (every record is an fsynced bbolt
// transaction, nearly free there), and synced, so the benchmarks read it
// from the page cache through bbolt's mmap.
func benchJournal(b *testing.B) string {
	b.Helper()
	if testing.Short() {
		b.Skip("builds a journal of 10,000 runs; not under -short")
	}
	benchOnce.Do(func() {
		dir := ""
		var st unix.Statfs_t
		if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
			dir = "/dev/shm"
		}
		tmp, err := os.MkdirTemp(dir, "kvrflow-bench-journal-")
		if err != nil {
			benchOnce.err = err
			return
		}
		defer os.RemoveAll(tmp)
		path := filepath.Join(tmp, "journal.db")
		if benchOnce.err = journalgen.Write(path, "/srv/app/db", benchRuns); benchOnce.err == nil {
			benchOnce.data, benchOnce.err = os.ReadFile(path)
		}
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	path := filepath.Join(b.TempDir(), "journal.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.Write(benchOnce.data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { b.ReportMetric(float64(len(benchOnce.data))/(1<<20), "journal-MiB") })
	return path
}

// BenchmarkVerify10kRuns times what kvrflow journal verify does on a
// journal of 10,000 runs: every hash and link checked, every run replayed
// through the restore FSM.
func BenchmarkVerify10kRuns(b *testing.B) {
	path := benchJournal(b)
	for b.Loop() {
		rep, err := audit.Verify(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Runs != benchRuns || rep.Events != journalgen.Events(benchRuns) {
			b.Fatalf("Verify: %d runs, %d events, problems %v; want %d runs, %d events, none",
				rep.Runs, rep.Events, rep.Problems, benchRuns, journalgen.Events(benchRuns))
		}
	}
}

// BenchmarkReport10kRuns times kvrflow journal report's page: the summary
// of 10,000 runs and the latest 50 in detail.
func BenchmarkReport10kRuns(b *testing.B) {
	path := benchJournal(b)
	for b.Loop() {
		st, err := audit.Report(io.Discard, path, audit.ReportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if st.Runs != benchRuns || st.Detailed != audit.DefaultRecent {
			b.Fatalf("Report: %+v", st)
		}
	}
}

// BenchmarkExportNDJSON10kRuns times kvrflow journal export --format
// ndjson of 10,000 runs.
func BenchmarkExportNDJSON10kRuns(b *testing.B) {
	path := benchJournal(b)
	for b.Loop() {
		if err := audit.Export(io.Discard, path, audit.ExportOptions{Format: "ndjson"}); err != nil {
			b.Fatal(err)
		}
	}
}
