package kvrflow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// benchJournals caches, per number of runs, the bytes of a journal whose
// runs all ended, so that -count N builds each only once.
var benchJournals sync.Map // int -> []byte

// benchJournal returns the bytes of a journal for target holding runs
// ended runs, each journaled as a committed restore is (eight records:
// every transition and the commit note, with details of the sizes the
// steps write). It is built with journal.Begin and Append, the only way
// in, on tmpfs when /dev/shm is one (every record is an fsynced bbolt
// transaction, nearly free there), else in a temporary directory.
func benchJournal(b *testing.B, target string, runs int) []byte {
	b.Helper()
	if v, ok := benchJournals.Load(runs); ok {
		return v.([]byte)
	}
	dir := ""
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
		dir = "/dev/shm"
	}
	tmp, err := os.MkdirTemp(dir, "kvrflow-bench-journal-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, steps.JournalName)
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	files := make([]steps.WrittenFile, 20)
	for i := range files {
		files[i] = steps.WrittenFile{Name: fmt.Sprintf("%06d.sst", i+5), Size: 64 << 20, CRC32C: uint32(i) * 2654435761}
	}
	id := fsx.FileID{Dev: 2049, Ino: 1234567}
	for range runs {
		r, err := j.Begin(journal.Run{Kind: "restore", Source: "/backups/app", Target: target,
			Mode: string(steps.ModeCopy), Engine: steps.EngineAuto, State: steps.StateNew})
		if err != nil {
			b.Fatal(err)
		}
		staging := target + ".kvrflow/staging-" + fmt.Sprint(r.ID)
		records := []struct {
			from, event, to string
			details         any
			outcome         string
		}{
			{steps.StateNew, "start", steps.StatePrecheck, nil, ""},
			{steps.StatePrecheck, "checked", steps.StateClean, steps.PrecheckDetails{Kind: "kvrflow", Engine: steps.EnginePebble,
				Mode: steps.ModeCopy, Files: len(files), Bytes: 20 * 64 << 20, Need: 21 * 64 << 20, Avail: 1 << 40, DBLock: true}, ""},
			{steps.StateClean, "cleaned", steps.StateWrite, steps.CleanDetails{}, ""},
			{steps.StateWrite, "written", steps.StateVerify, steps.WriteDetails{Staging: staging, Mode: steps.ModeCopy,
				Bytes: 20 * 64 << 20, Files: files}, ""},
			{steps.StateVerify, "verified", steps.StateCommit, steps.VerifyDetails{Check: "pebble open read-only + CheckLevels"}, ""},
			{steps.StateCommit, "note", steps.StateCommit, steps.CommitPlan{Plan: steps.PlanExchange, DB: target,
				Staging: staging, DBID: &id, StagingID: &id}, ""},
			{steps.StateCommit, "committed", steps.StateFinish, steps.CommitPlan{Plan: steps.PlanExchange, DB: target,
				Staging: staging, DBID: &id, StagingID: &id}, ""},
			{steps.StateFinish, "finished", steps.StateDone, steps.FinishDetails{Removed: []string{staging}}, steps.OutcomeCommitted},
		}
		for _, rec := range records {
			if err := j.Append(r.ID, rec.from, rec.event, rec.to, rec.details, rec.outcome, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	benchJournals.Store(runs, data)
	return data
}

// benchWriteSynced writes data to path and fsyncs it, so that the first
// timed fdatasync of bbolt does not pay for flushing the copy.
func benchWriteSynced(b *testing.B, path string, data []byte) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRecover_NothingInFlight is what a server pays at each start:
// kvrflow.Recover on a database whose journal (on the real disk) holds
// only ended runs. Recover with nothing in flight changes nothing but the
// journal's bbolt meta page, so one copy serves every iteration.
// Issue 6's target: ≤ 20 ms over 10,000 past runs.
func BenchmarkRecover_NothingInFlight(b *testing.B) {
	for _, runs := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("runs=%d", runs), func(b *testing.B) {
			if runs > 1 && testing.Short() {
				b.Skip("builds a journal of 10,000 runs; not under -short")
			}
			db := filepath.Join(b.TempDir(), "db")
			layout, err := steps.NewLayout(db)
			if err != nil {
				b.Fatal(err)
			}
			data := benchJournal(b, layout.DB, runs)
			for _, d := range []string{db, layout.Work} {
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
			}
			benchWriteSynced(b, layout.Journal(), data)
			ctx := context.Background()
			for b.Loop() {
				rec, err := Recover(ctx, Options{DB: db})
				if err != nil {
					b.Fatal(err)
				}
				if len(rec) != 0 {
					b.Fatalf("Recover found %d runs in flight, want none", len(rec))
				}
			}
			b.ReportMetric(float64(len(data))/(1<<20), "journal-MiB")
		})
	}
}
