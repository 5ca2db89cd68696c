package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// failNth fails the n-th file-system operation (counting from 0) with
// errno, once, and records whether it fired.
type failNth struct {
	n     int64
	errno error
	seen  atomic.Int64
	fired atomic.Bool
}

func (f *failNth) MaybeError(op errorfs.Op) error {
	if f.seen.Add(1)-1 != f.n {
		return nil
	}
	f.fired.Store(true)
	return &os.PathError{Op: fmt.Sprintf("op%d", op.Kind), Path: op.Path, Err: f.errno}
}

func (f *failNth) String() string { return "failNth" }

// TestRestore_ErrorSweep fails file-system operation N of a restore, for
// N = 0, 1, 2, ... until a restore runs without the injection firing. A
// restore that fails must be rolled back (never left in flight) with the
// old database intact key by key; one that succeeds despite the error (a
// retried idempotent step absorbed it) must hold the new one. Either way
// no staging is left, and a plain restore afterwards succeeds. Under
// -short every fifth N is tried.
func TestRestore_ErrorSweep(t *testing.T) {
	for _, errno := range []error{syscall.EIO, syscall.ENOSPC} {
		t.Run(errno.Error(), func(t *testing.T) { testErrorSweep(t, errno) })
	}
}

func testErrorSweep(t *testing.T, errno error) {
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, "/e")
	stride := int64(1)
	if testing.Short() {
		stride = 5
	}
	var failed, absorbed int
	for n := int64(0); ; n += stride {
		fs := base.CrashClone(vfs.CrashCloneCfg{})
		inj := &failNth{n: n, errno: errno}
		opts := Options{DB: f.db, Source: f.backup, FS: errorfs.Wrap(fs, inj), Journal: filepath.Join(t.TempDir(), "j.db"), Mode: steps.ModeCopy}
		_, err := Restore(context.Background(), opts)
		if !inj.fired.Load() {
			if err != nil {
				t.Fatalf("op %d: restore without injection failed: %v", n, err)
			}
			t.Logf("error sweep (%v): %d operations; %d failed and rolled back, %d absorbed by a retry", errno, n, failed, absorbed)
			if failed == 0 {
				t.Fatal("no injected error made a restore fail")
			}
			return
		}
		want := check.New
		switch {
		case err == nil:
			absorbed++
		case errors.Is(err, fsm.ErrInFlight):
			t.Fatalf("op %d: run left in flight: %v", n, err)
		case !errors.Is(err, errno):
			t.Fatalf("op %d: error does not carry the injected %v: %v", n, errno, err)
		default:
			failed++
			want = check.Old
		}
		if rep, cerr := f.target(fs, opts.Journal).Recovered(); cerr != nil || rep.DB != want {
			t.Fatalf("op %d: after %v: want the %s database: %+v, %v", n, err, want, rep, cerr)
		}
		opts.FS = fs
		if _, err := Restore(context.Background(), opts); err != nil {
			t.Fatalf("op %d: plain restore after the failure: %v", n, err)
		}
		if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
			t.Fatalf("op %d: plain restore after the failure did not give the backup's database", n)
		}
	}
}

// TestRestore_DoubleCrash crashes a restore at each crash point, then
// crashes the recovery at each of its own mutating operations (power loss
// via CrashClone), then recovers again: the database is the one the
// journal left by the second crash decides, complete. Under -short every
// fourth restore crash point is tried.
func TestRestore_DoubleCrash(t *testing.T) {
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, "/d")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	points, err := recordCrashPoints(t, base.CrashClone(vfs.CrashCloneCfg{}), opts, *crashSeed)
	if err != nil {
		t.Fatal(err)
	}
	stride := 1
	if testing.Short() {
		stride = 4
	}
	pairs := 0
	for i := 0; i < len(points); i += stride {
		cp := points[i]
		jpath := filepath.Join(t.TempDir(), "journal.db")
		if cp.journal != nil {
			must(t, os.WriteFile(jpath, cp.journal, 0o600))
		}
		rpoints, rerr := recordCrashPointsOf(t, cp.fs, jpath, *crashSeed+uint64(i), func(v vfs.FS) error {
			_, err := Recover(context.Background(), Options{DB: f.db, FS: v, Journal: jpath})
			return err
		})
		if rerr != nil {
			t.Fatalf("crash point %d: recovery: %v", cp.index, rerr)
		}
		for _, rcp := range rpoints {
			rcp.op = cp.op + " then recovery " + rcp.op
			checkRecovered(t, f, rcp)
			pairs++
		}
	}
	t.Logf("double crash: %d restore crash points tried, %d crash x recovery-crash pairs, each the database its journal decided", (len(points)+stride-1)/stride, pairs)
}

func assertNoRunDirs(t *testing.T, fs vfs.FS, db string) {
	t.Helper()
	names, _ := fs.List(db + ".kvrflow")
	for _, n := range names {
		if len(n) > 4 && (n[:4] == "old-" || (len(n) > 8 && n[:8] == "staging-")) {
			t.Fatalf("%s left in %s.kvrflow", n, db)
		}
	}
}
