package kvrflow

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
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

// checkRecovered recovers a crash point and checks the invariants: the
// database is the old one or the backup's, complete, key by key; it is the
// backup's exactly when the journal says committed; nothing of the run is
// left in flight or on disk.
func checkRecovered(t *testing.T, f *fixture, cp crashPoint) (outcome string) {
	t.Helper()
	jpath := filepath.Join(t.TempDir(), "journal.db")
	if cp.journal != nil {
		if err := os.WriteFile(jpath, cp.journal, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	where := fmt.Sprintf("crash point %d (%s, %d%% unsynced kept)", cp.index, cp.op, cp.percent)
	opts := Options{DB: f.db, FS: cp.fs, Journal: jpath}
	if _, err := Recover(context.Background(), opts); err != nil {
		t.Fatalf("%s: recover: %v", where, err)
	}
	outcome = "none"
	if cp.journal != nil {
		j, err := journal.Open(jpath, journal.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		runs, err := j.Runs(0)
		j.Close()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, r := range runs {
			if r.InFlight() {
				t.Fatalf("%s: run %d still in flight in %s", where, r.ID, r.State)
			}
			outcome = r.Outcome
		}
	}
	if f.old == nil && outcome != steps.OutcomeCommitted {
		// A restore into a new directory rolled back: DB is gone again.
		if ok, err := cp.fs.Stat(f.db); err == nil {
			t.Fatalf("%s: rolled back a restore into a new directory, but %s exists (%v)", where, f.db, ok.IsDir())
		}
		return outcome
	}
	got, err := testutil.TryReadDB(cp.fs, f.db)
	if err != nil {
		t.Fatalf("%s: database does not open after recovery: %v", where, err)
	}
	want, name := f.old, "old"
	if outcome == steps.OutcomeCommitted {
		want, name = f.new, "new"
	}
	if !testutil.Equal(got, want) {
		t.Fatalf("%s: outcome %s but database (%d keys) is not the %s one (%d keys)", where, outcome, len(got), name, len(want))
	}
	names, err := cp.fs.List(f.db + ".kvrflow")
	if err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, "staging-") || strings.HasPrefix(n, "old-") {
				t.Fatalf("%s: %s left in the work directory", where, n)
			}
		}
	}
	return outcome
}

// TestRestore_PowerLossMatrix crashes a restore after every mutating
// file-system operation, at 0 % and at a seeded random percentage of
// unsynced data kept, recovers, and checks that the database is the old
// or the new one, complete. Under -short it checks every third point.
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
