package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// keptDirs lists the previous-* directories in db's kvrflow directory.
func keptDirs(t testing.TB, fs vfs.FS, db string) []string {
	t.Helper()
	names, _ := fs.List(db + ".kvrflow")
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "previous-") {
			out = append(out, filepath.Join(db+".kvrflow", n))
		}
	}
	return out
}

// TestUndo_BringsBackTheReplacedDatabaseAndTwiceIsRedo: a restore with
// KeepOld keeps the database it replaced; Undo brings it back and keeps
// the restored one in turn; a second Undo is a redo. No database is ever
// removed along the way.
func TestUndo_BringsBackTheReplacedDatabaseAndTwiceIsRedo(t *testing.T) {
	for _, noExchange := range []bool{false, true} {
		t.Run(map[bool]string{false: "exchange", true: "rename"}[noExchange], func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			o := f.opts()
			o.KeepOld, o.NoExchange = 1, noExchange
			if _, err := Restore(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if kept := keptDirs(t, vfs.Default, f.db); len(kept) != 1 || !testutil.Equal(testutil.ReadDB(t, vfs.Default, kept[0]), f.old) {
				t.Fatalf("kept %v, want one directory holding the old database", kept)
			}
			st, err := Status(Options{DB: f.db})
			must(t, err)
			if len(st.Kept) != 1 || st.Kept[0].Bytes <= 0 {
				t.Fatalf("status lists kept %+v, want one with its size", st.Kept)
			}
			u := Options{DB: f.db, NoExchange: noExchange}
			for i, want := range []map[string]string{f.old, f.new, f.old} {
				res, err := Undo(context.Background(), u)
				if err != nil {
					t.Fatalf("undo %d: %v", i+1, err)
				}
				if res.Run.Kind != steps.KindUndo || res.Run.Outcome != steps.OutcomeCommitted {
					t.Fatalf("undo %d: run %+v", i+1, res.Run)
				}
				if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, want) {
					t.Fatalf("undo %d: the database is not the one expected", i+1)
				}
				kept := keptDirs(t, vfs.Default, f.db)
				other := f.new
				if testutil.Equal(want, f.new) {
					other = f.old
				}
				if len(kept) != 1 || !testutil.Equal(testutil.ReadDB(t, vfs.Default, kept[0]), other) {
					t.Fatalf("undo %d: kept %v, want the displaced database", i+1, kept)
				}
			}
			rep, err := audit.Verify(f.db+".kvrflow/journal.db", nil)
			must(t, err)
			if !rep.OK() {
				t.Fatalf("journal verify: %v", rep.Problems)
			}
		})
	}
}

// TestUndo_NothingKeptIsRefused: with no journal, or a journal that keeps
// nothing, Undo is bad input (ErrNothingKept), journals no run and
// changes nothing.
func TestUndo_NothingKeptIsRefused(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	if _, err := Undo(context.Background(), Options{DB: f.db}); !errors.Is(err, steps.ErrNothingKept) || !strings.Contains(err.Error(), f.db) {
		t.Fatalf("no journal: err = %v, want ErrNothingKept naming %s", err, f.db)
	}
	if _, err := Restore(context.Background(), f.opts()); err != nil {
		t.Fatal(err)
	}
	if _, err := Undo(context.Background(), Options{DB: f.db}); !errors.Is(err, steps.ErrNothingKept) {
		t.Fatalf("nothing kept: err = %v, want ErrNothingKept", err)
	}
	j, err := journal.Open(f.db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	if runs, _ := j.Runs(0); len(runs) != 1 {
		t.Fatalf("%d runs journaled, want only the restore", len(runs))
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the database changed")
	}
}

// TestRestore_KeepOldKeepsAtMostNGenerations: restores with KeepOld=2
// keep the two newest replaced databases; older ones are removed, by
// proof of identity. A restore without KeepOld leaves them alone.
func TestRestore_KeepOldKeepsAtMostNGenerations(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	o := f.opts()
	o.KeepOld = 2
	for i := 0; i < 4; i++ {
		if _, err := Restore(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	kept := keptDirs(t, vfs.Default, f.db)
	if len(kept) != 2 {
		t.Fatalf("kept %v, want 2 generations", kept)
	}
	o.KeepOld = 0
	if _, err := Restore(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := keptDirs(t, vfs.Default, f.db); len(got) != 2 {
		t.Fatalf("a restore without keep-old changed the kept generations: %v", got)
	}
	// A stranger at a kept name is not the journal's: quarantined, not
	// removed.
	jid := journalID(t, f.db)
	stranger := f.db + ".kvrflow/previous-" + jid + "-99"
	must(t, os.MkdirAll(stranger, 0o755))
	must(t, os.WriteFile(filepath.Join(stranger, "p"), []byte("precious"), 0o644))
	if _, err := Restore(context.Background(), f.opts()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.db+".kvrflow/quarantine", "run6-previous-"+jid+"-99", "p"))
	if err != nil || string(b) != "precious" {
		t.Fatalf("the stranger at a kept name: %q, %v; want it quarantined", b, err)
	}
}

// undoFixture is a MemFS fixture after a restore with KeepOld: DB holds
// the backup's database, the old one is kept.
func undoFixture(t *testing.T, root string) (*fixture, *vfs.MemFS) {
	t.Helper()
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, root)
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	o := f.opts()
	o.KeepOld = 1
	if _, err := Restore(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return f, base
}

// checkUndone checks, after a crash of an undo and its recovery, that DB is
// the restored database (undo rolled back) or the kept one (undo
// committed), as the journal says, and that the other is kept: an undo
// never loses either database.
func checkUndone(t *testing.T, f *fixture, fs vfs.FS, jpath, where string) string {
	t.Helper()
	if _, err := Recover(context.Background(), Options{DB: f.db, FS: fs, Journal: jpath}); err != nil {
		t.Fatalf("%s: recover: %v", where, err)
	}
	j, err := journal.Open(jpath, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	runs, err := j.Runs(0)
	j.Close()
	must(t, err)
	last := runs[len(runs)-1]
	if last.InFlight() {
		t.Fatalf("%s: run %d still in flight", where, last.ID)
	}
	outcome := "none"
	if last.Kind == steps.KindUndo {
		outcome = last.Outcome
	}
	want, other := f.new, f.old
	if outcome == steps.OutcomeCommitted {
		want, other = f.old, f.new
	}
	got, err := testutil.TryReadDB(fs, f.db)
	if err != nil || !testutil.Equal(got, want) {
		t.Fatalf("%s: undo %s but the database (%d keys, %v) is not the expected one", where, outcome, len(got), err)
	}
	kept := keptDirs(t, fs, f.db)
	if len(kept) != 1 {
		t.Fatalf("%s: kept %v, want exactly one", where, kept)
	}
	if k, err := testutil.TryReadDB(fs, kept[0]); err != nil || !testutil.Equal(k, other) {
		t.Fatalf("%s: the kept database is not the other one (%v)", where, err)
	}
	assertNoRunDirs(t, fs, f.db)
	return outcome
}

// TestUndo_PowerLossMatrix crashes an undo before every mutating
// file-system operation (0 % and a seeded share of unsynced data kept),
// recovers, and checks that DB is the restored or the kept database as
// the journal says, and the other one is kept. (The in-memory file system
// has no exchange: this is the two-rename plan.)
func TestUndo_PowerLossMatrix(t *testing.T) {
	f, base := undoFixture(t, "/u")
	fs := base.CrashClone(vfs.CrashCloneCfg{})
	jbytes, err := os.ReadFile(f.journal)
	must(t, err)
	jpath := filepath.Join(t.TempDir(), "journal.db")
	must(t, os.WriteFile(jpath, jbytes, 0o600))
	points, err := recordCrashPointsOf(t, fs, jpath, *crashSeed, func(v vfs.FS) error {
		_, err := Undo(context.Background(), Options{DB: f.db, FS: v, Journal: jpath})
		return err
	})
	if err != nil {
		t.Fatalf("undo: %v", err)
	}
	counts := map[string]int{}
	for _, cp := range points {
		p := filepath.Join(t.TempDir(), "journal.db")
		must(t, os.WriteFile(p, cp.journal, 0o600))
		counts[checkUndone(t, f, cp.fs, p, cp.op)]++
	}
	if counts[steps.OutcomeCommitted] == 0 || counts[steps.OutcomeRolledBack] == 0 {
		t.Fatalf("outcomes %v: want both", counts)
	}
	t.Logf("undo power-loss matrix: %d crash points: outcomes %v", len(points), counts)
}

// TestUndo_ErrorSweep fails file-system operation N of an undo (EIO), for
// every N until the undo runs without the injection firing: each undo
// either commits or is rolled back at once, never left in flight, and
// neither database is lost.
func TestUndo_ErrorSweep(t *testing.T) {
	f, base := undoFixture(t, "/s")
	jbytes, err := os.ReadFile(f.journal)
	must(t, err)
	failed := 0
	for n := int64(0); ; n++ {
		fs := base.CrashClone(vfs.CrashCloneCfg{})
		jpath := filepath.Join(t.TempDir(), "journal.db")
		must(t, os.WriteFile(jpath, jbytes, 0o600))
		inj := &failNth{n: n, errno: syscall.EIO}
		_, err := Undo(context.Background(), Options{DB: f.db, FS: errorfs.Wrap(fs, inj), Journal: jpath})
		if !inj.fired.Load() {
			if err != nil {
				t.Fatalf("op %d: undo without injection: %v", n, err)
			}
			t.Logf("undo error sweep: %d operations, %d failed and rolled back", n, failed)
			if failed == 0 {
				t.Fatal("no injected error made an undo fail")
			}
			return
		}
		if errors.Is(err, fsm.ErrInFlight) && !errors.Is(err, fsx.ErrSync) {
			t.Fatalf("op %d: undo left in flight: %v", n, err)
		}
		if err != nil {
			failed++
		}
		checkUndone(t, f, fs, jpath, fmt.Sprintf("op %d", n))
	}
}
