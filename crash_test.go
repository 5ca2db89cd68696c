package kvrflow

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

var crashSeed = flag.Uint64("crash-seed", 1, "seed for the unsynced-data percentages of the power-loss matrix")

// crashPoint is the state of the disk and the journal at one instant of a
// restore: a power loss there leaves exactly this.
type crashPoint struct {
	index   int
	op      string
	fs      *vfs.MemFS
	percent int
	journal []byte
}

// recordCrashPoints runs a restore on fs, taking before every mutating
// file-system operation two crash clones (0 % and a seeded random
// percentage of unsynced data kept) and a copy of the journal as it
// stands, and returns them with the restore's error.
func recordCrashPoints(t *testing.T, fs *vfs.MemFS, opts Options, seed uint64) ([]crashPoint, error) {
	t.Helper()
	return recordCrashPointsOf(t, fs, opts.Journal, seed, func(v vfs.FS) error {
		o := opts
		o.FS = v
		_, err := Restore(context.Background(), o)
		return err
	})
}

// recordCrashPointsOf runs fn on fs wrapped so that every mutating
// operation first records a pair of crash points.
func recordCrashPointsOf(t *testing.T, fs *vfs.MemFS, journalPath string, seed uint64, fn func(vfs.FS) error) ([]crashPoint, error) {
	t.Helper()
	// One worker: MemFS.CrashClone waits for every operation in progress,
	// and MemFS takes its clone lock twice in some operations (Lock, then
	// Create), so a clone taken while another goroutine is inside one
	// deadlocks. Parallel workers are covered by the error sweep and the
	// process tests; here each crash point is one instant of one sequence.
	defer func(w int) { steps.Workers = w }(steps.Workers)
	steps.Workers = 1
	rng := rand.New(rand.NewPCG(seed, 7))
	var mu sync.Mutex
	var points []crashPoint
	snap := func(op string) {
		j, err := os.ReadFile(journalPath)
		if err != nil && !os.IsNotExist(err) {
			t.Errorf("read journal: %v", err)
		}
		pct := 1 + rng.IntN(99)
		points = append(points,
			crashPoint{index: len(points) / 2, op: op, fs: fs.CrashClone(vfs.CrashCloneCfg{}), journal: j},
			crashPoint{index: len(points) / 2, op: op, percent: pct, journal: j,
				fs: fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(seed, uint64(len(points))))})})
	}
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			mu.Lock()
			snap(fmt.Sprintf("%v %s", op.Kind, op.Path))
			mu.Unlock()
		}
		return nil
	})
	err := fn(errorfs.Wrap(fs, inj))
	mu.Lock()
	snap("end")
	mu.Unlock()
	return points, err
}

// target is the check target of f's database on fs with the journal at
// jpath: the old database (none if f.old is nil) or the backup's, key by
// key.
func (f *fixture) target(fs vfs.FS, jpath string) check.Target {
	old := check.Database{Keys: f.old, Absent: f.old == nil}
	return check.Target{FS: fs, DB: f.db, Journal: jpath, Old: old, New: check.Database{Keys: f.new}}
}

// checkRecovered recovers a crash point and checks the invariant (package
// check): the database is the one the journal at the crash point
// decides, the backup's exactly when the commit point record was durable
// (check.Target.Expect), complete, key by key; the journal agrees, with
// nothing in flight; no run directory is left. It returns the newest
// run's outcome ("none" without a journal).
func checkRecovered(t *testing.T, f *fixture, cp crashPoint) (outcome string) {
	t.Helper()
	jpath := filepath.Join(t.TempDir(), "journal.db")
	if cp.journal != nil {
		if err := os.WriteFile(jpath, cp.journal, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	where := fmt.Sprintf("crash point %d (%s, %d%% unsynced kept)", cp.index, cp.op, cp.percent)
	tg := f.target(cp.fs, jpath)
	want, err := tg.Expect()
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if _, err := Recover(context.Background(), Options{DB: f.db, FS: cp.fs, Journal: jpath}); err != nil {
		t.Fatalf("%s: recover: %v", where, err)
	}
	rep, err := tg.Recovered()
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if rep.DB != want {
		t.Fatalf("%s: recovery left the %s database; the journal at the crash said %s", where, rep.DB, want)
	}
	if rep.Outcome == "" {
		return "none"
	}
	return rep.Outcome
}

// TestRestore_PowerLossMatrix crashes a restore after every mutating
// file-system operation, at 0 % and at a seeded random percentage of
// unsynced data kept, recovers, and checks that the database is the one
// the journal at the crash decides (old before the commit point record
// is durable, new after it), complete. Under -short it checks every third
// point.
func TestRestore_PowerLossMatrix(t *testing.T) {
	for _, mode := range []steps.Mode{steps.ModeCopy, steps.ModeLink} {
		t.Run(string(mode), func(t *testing.T) { testPowerLossMatrix(t, mode, false) })
	}
	// The fresh plan: DB does not exist, the commit renames staging to DB,
	// and its undo renames it back.
	t.Run("fresh", func(t *testing.T) { testPowerLossMatrix(t, steps.ModeCopy, true) })
}

func testPowerLossMatrix(t *testing.T, mode steps.Mode, fresh bool) {
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, "/m")
	if fresh {
		if err := base.RemoveAll(f.db); err != nil {
			t.Fatal(err)
		}
		testutil.MkdirDurable(t, base, filepath.Dir(f.db)) // syncs the removal
		f.old = nil
	}
	fs := base.CrashClone(vfs.CrashCloneCfg{}) // start from what is durable
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = mode
	points, err := recordCrashPoints(t, fs, opts, *crashSeed)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("uncrashed restore did not produce the backup's database")
	}
	step := 1
	if testing.Short() && !fresh {
		step = 3
	}
	counts := map[string]int{}
	ran := 0
	for i := 0; i < len(points); i += 2 * step {
		for _, cp := range points[i:min(i+2, len(points))] {
			counts[checkRecovered(t, f, cp)]++
			ran++
			if ran%10 == 1 {
				// A plain restore after the recovery succeeds.
				jpath := filepath.Join(t.TempDir(), "again.db")
				if _, err := Restore(context.Background(), Options{DB: f.db, Source: f.backup, FS: cp.fs, Journal: jpath, Mode: mode}); err != nil {
					t.Fatalf("crash point %d: restore after recovery: %v", cp.index, err)
				}
				if got := testutil.ReadDB(t, cp.fs, f.db); !testutil.Equal(got, f.new) {
					t.Fatalf("crash point %d: restore after recovery did not give the backup's database", cp.index)
				}
			}
		}
	}
	if counts[steps.OutcomeCommitted] == 0 || counts[steps.OutcomeRolledBack] == 0 {
		t.Fatalf("matrix saw outcomes %v: want both rolled back and committed crash points", counts)
	}
	t.Logf("power-loss matrix (%s): %d crash points (%d operations x 2 clones), %d checked: outcomes %v", mode, len(points), len(points)/2, ran, counts)
}
