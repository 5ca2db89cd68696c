package kvrflow

import (
	"path/filepath"
	"testing"

	"github.com/kvrflow/kvrflow/steps"
)

// BenchmarkVerifyJournal10kRuns times what kvrflow journal verify does on
// a journal of 10,000 committed restores (eight records each, as
// benchJournal journals them through journal.Begin and Append, built once
// per process): every hash and link checked, every run replayed through
// the restore FSM. The journal is on the real disk, read through bbolt's
// mmap from the page cache after the first iteration.
func BenchmarkVerifyJournal10kRuns(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a journal of 10,000 runs; not under -short")
	}
	const runs = 10_000
	data := benchJournal(b, "/srv/app/db", runs)
	path := filepath.Join(b.TempDir(), steps.JournalName)
	benchWriteSynced(b, path, data)
	for b.Loop() {
		rep, err := VerifyJournal(path)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Runs != runs || rep.Events != 8*runs {
			b.Fatalf("VerifyJournal: %d runs, %d events, problems %v; want %d runs, %d events, none", rep.Runs, rep.Events, rep.Problems, runs, 8*runs)
		}
	}
	b.ReportMetric(float64(len(data))/(1<<20), "journal-MiB")
}
