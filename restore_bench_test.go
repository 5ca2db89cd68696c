package kvrflow

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// benchRestoreMiB is the size of the backup BenchmarkRestore restores;
// KVRFLOW_BENCH_MB overrides it.
const benchRestoreMiB = 256

// benchPebbleDB makes a Pebble database of about mib MiB of random
// (incompressible) 4 KiB values in dir, on the real disk.
func benchPebbleDB(b *testing.B, dir string, mib int) {
	b.Helper()
	if err := sampledb.Make(nil, dir, sampledb.Spec{Seed: 3, Keys: mib * 256, ValueSize: 4096, Flushes: 1}); err != nil {
		b.Fatal(err)
	}
}

// benchStateTimes adds to spent the time run spent in each state, read
// from its journal: from the record that entered the state to the one
// that left it (the step, its notes, and the journal write that ends it).
func benchStateTimes(b *testing.B, db string, run journal.Run, spent map[string]time.Duration) {
	b.Helper()
	layout, err := steps.NewLayout(db)
	if err != nil {
		b.Fatal(err)
	}
	j, err := journal.Open(layout.Journal(), journal.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	evs, err := j.Events(run.ID)
	if err != nil {
		b.Fatal(err)
	}
	entered := run.Start
	for _, ev := range evs {
		if ev.From == ev.To {
			continue // a note: still in the same state
		}
		spent[ev.From] += ev.Time.Sub(entered)
		entered = ev.Time
	}
}

// BenchmarkRestore is a whole kvrflow.Restore of a Pebble backup of
// about 256 MiB (KVRFLOW_BENCH_MB) on the real disk, in copy and in link
// mode: recovery check, precheck (every source file read and checksummed),
// clean, write (copy+crc32c+fsync, or hard links; read-back), verify
// (Pebble CheckLevels), commit (exchange) and finish (the old database
// removed). Each iteration restores over the database the previous one
// restored, as a node restoring again would. The page cache is warm: the
// source stays cached between iterations; bench/run measures cold.
func BenchmarkRestore(b *testing.B) {
	if testing.Short() {
		b.Skip("makes a 256 MiB backup; not under -short")
	}
	mib := benchRestoreMiB
	if s := os.Getenv("KVRFLOW_BENCH_MB"); s != "" {
		var err error
		if mib, err = strconv.Atoi(s); err != nil || mib <= 0 {
			b.Fatalf("KVRFLOW_BENCH_MB=%q: want a positive number of MiB", s)
		}
	}
	root := b.TempDir()
	src, backup := filepath.Join(root, "src"), filepath.Join(root, "backup")
	benchPebbleDB(b, src, mib)
	res, err := Backup(context.Background(), src, backup, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(src); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []steps.Mode{steps.ModeCopy, steps.ModeLink} {
		b.Run(string(mode), func(b *testing.B) {
			node := filepath.Join(root, "node-"+string(mode))
			if err := os.Mkdir(node, 0o755); err != nil {
				b.Fatal(err)
			}
			db := filepath.Join(node, "db")
			testutil.MakeDB(b, vfs.Default, db, 1, 200)
			opts := Options{DB: db, Source: backup, Mode: mode}
			ctx := context.Background()
			b.SetBytes(res.Bytes)
			spent := map[string]time.Duration{}
			n := 0
			for b.Loop() {
				r, err := Restore(ctx, opts)
				if err != nil {
					b.Fatal(err)
				}
				if r.Run.Outcome != steps.OutcomeCommitted {
					b.Fatalf("run %d ended %q, want committed", r.Run.ID, r.Run.Outcome)
				}
				b.StopTimer()
				benchStateTimes(b, db, r.Run, spent)
				n++
				b.StartTimer()
			}
			b.ReportMetric(float64(res.Files), "files")
			for state, d := range spent {
				b.ReportMetric(d.Seconds()*1e3/float64(n), state+"-ms/op")
			}
		})
	}
}
