package kvrflow

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// linkFails is a file system on the real disk whose hard links fail with
// errno.
func linkFails(errno syscall.Errno) vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpLink {
			return &os.LinkError{Op: "link", Old: op.Path, New: op.Path, Err: errno}
		}
		return nil
	}))
}

// TestRestore_LinkRefusedFallsBackToCopyInAutoMode: where link() fails
// with EPERM (fs.protected_hardlinks) or EXDEV (kvrflow's directory on
// another file system), --mode auto copies the tables instead and journals
// why; --mode link fails, naming which of the two it met, and the run is
// rolled back as bad input.
func TestRestore_LinkRefusedFallsBackToCopyInAutoMode(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EXDEV} {
		name := map[syscall.Errno]string{syscall.EPERM: "EPERM", syscall.EXDEV: "EXDEV"}[errno]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			o := f.opts()
			o.FS, o.Mode = linkFails(errno), steps.ModeLink
			_, err := Restore(context.Background(), o)
			if !errors.Is(err, steps.ErrBadPath) || !errors.Is(err, fsm.ErrRolledBack) || !strings.Contains(err.Error(), name) {
				t.Fatalf("--mode link: err = %v, want a rolled-back bad path naming %s", err, name)
			}
			if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.old) {
				t.Fatal("the database changed")
			}
			o.Mode = steps.ModeAuto
			res, err := Restore(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
				t.Fatal("auto mode did not restore the backup")
			}
			var w steps.WriteDetails
			writtenDetails(t, f.db, res.Run.ID, &w)
			if !strings.Contains(w.LinkFallback, name) {
				t.Errorf("write details journal link_fallback %q, want it to name %s", w.LinkFallback, name)
			}
			for _, wf := range w.Files {
				if wf.Linked {
					t.Errorf("%s journaled as linked after links were refused", wf.Name)
				}
			}
		})
	}
}

// writtenDetails decodes the details of run's "written" record.
func writtenDetails(t *testing.T, db string, run uint64, v any) {
	t.Helper()
	j, err := journal.Open(db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	evs, err := j.Events(run)
	must(t, err)
	for _, ev := range evs {
		if ev.Event == "written" {
			must(t, json.Unmarshal(ev.Details, v))
			return
		}
	}
	t.Fatalf("run %d has no written record", run)
}

// TestRecover_FinishRemovesNothingWhenDBIsNotTheNewDatabase: a run
// committed, then, before Finish, someone put another directory at DB.
// Finish checks DB's identity against the commit plan's, refuses with
// ErrInconsistent, and removes nothing: the old database is still where
// the commit left it.
func TestRecover_FinishRemovesNothingWhenDBIsNotTheNewDatabase(t *testing.T) {
	for _, noExchange := range []bool{false, true} {
		t.Run(map[bool]string{false: "exchange", true: "rename"}[noExchange], func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			o := f.opts()
			o.NoExchange = noExchange
			crashAt(t, o, "restore.finish.begin")
			before := testutil.Snapshot(t, vfs.Default, f.db+".kvrflow")
			must(t, os.Rename(f.db, f.db+"-moved"))
			must(t, os.Mkdir(f.db, 0o755))
			_, err := Recover(context.Background(), Options{DB: f.db})
			if !errors.Is(err, steps.ErrInconsistent) || !strings.Contains(err.Error(), "not the staged directory") {
				t.Fatalf("err = %v, want ErrInconsistent: DB is not the staged directory", err)
			}
			if after := testutil.Snapshot(t, vfs.Default, f.db+".kvrflow"); !sameFiles(before, after) {
				t.Fatal("recovery changed kvrflow's directory though DB was not the new database")
			}
			// Put it back: recovery finishes the run.
			must(t, os.Remove(f.db))
			must(t, os.Rename(f.db+"-moved", f.db))
			if _, err := Recover(context.Background(), Options{DB: f.db}); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
				t.Fatal("not the backup's database")
			}
		})
	}
}

// sameFiles compares two snapshots, ignoring the journal (recovery reads
// it, and a failed recovery journals nothing but may have opened it).
func sameFiles(a, b map[string]string) bool {
	for k, v := range a {
		if strings.HasPrefix(k, "journal.db") || k == "lock" {
			continue
		}
		if b[k] != v {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !strings.HasPrefix(k, "journal.db") && k != "lock" {
			return false
		}
	}
	return true
}

// TestRecover_FailedFsyncIsNotRetried: during a rollback every directory
// fsync fails; the first failure is final: the step is not tried again
// (fsyncgate: a second fsync may succeed though the data is lost), and the
// run is left in flight for a later recover.
func TestRecover_FailedFsyncIsNotRetried(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	crashAt(t, f.opts(), "restore.verify.begin")
	var failed atomic.Int32
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileSync && strings.HasSuffix(op.Path, ".kvrflow") {
			failed.Add(1)
			return syscall.EIO
		}
		return nil
	}))
	_, err := Recover(context.Background(), Options{DB: f.db, FS: fs})
	if !errors.Is(err, fsm.ErrInFlight) || !errors.Is(err, fsx.ErrSync) {
		t.Fatalf("err = %v, want the run left in flight by a failed fsync", err)
	}
	if n := failed.Load(); n != 1 {
		t.Errorf("the failed fsync was tried %d times, want once", n)
	}
	if _, err := Recover(context.Background(), Options{DB: f.db}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.old) {
		t.Fatal("not the old database")
	}
}
