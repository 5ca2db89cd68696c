package check_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// setup makes, in a temporary directory, an old database at node/db and a
// backup of another one, and returns the target (the old database by keys
// and files, the new one by keys) and the backup.
func setup(tb testing.TB) (check.Target, string) {
	tb.Helper()
	root := tb.TempDir()
	db := filepath.Join(root, "node", "db")
	src := filepath.Join(root, "src")
	newKV := testutil.MakeDB(tb, vfs.Default, src, 2, 150)
	backup := filepath.Join(root, "backup")
	if _, err := kvrflow.Backup(context.Background(), src, backup, nil); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		tb.Fatal(err)
	}
	oldKV := testutil.MakeDB(tb, vfs.Default, db, 1, 100)
	oldFiles, err := check.Digest(nil, db)
	if err != nil {
		tb.Fatal(err)
	}
	return check.Target{DB: db,
		Old: check.Database{Keys: oldKV, Files: oldFiles},
		// A restored database holds the backup's files, not src's (the
		// backup is a checkpoint): the new one is described by keys.
		New: check.Database{Keys: newKV}}, backup
}

type crashed struct{}

// crashAt runs a restore that stops dead at point, as a kill there would.
func crashAt(tb testing.TB, tg check.Target, backup, point string) {
	tb.Helper()
	set, err := fault.Parse(point + ":crash")
	if err != nil {
		tb.Fatal(err)
	}
	set.SetCrash(func(string) { panic(crashed{}) })
	defer func() {
		if r := recover(); r == nil {
			tb.Fatalf("the restore did not reach %s", point)
		} else if _, ok := r.(crashed); !ok {
			panic(r)
		}
	}()
	_, _ = kvrflow.Restore(context.Background(), kvrflow.Options{DB: tg.DB, Source: backup, Faults: set})
}

func TestExpect_NewExactlyWhenTheCommitPointRecordIsDurable(t *testing.T) {
	for _, tc := range []struct {
		point   string
		want    check.Result
		outcome string
	}{
		{"restore.verify.begin", check.Old, steps.OutcomeRolledBack},
		{"restore.commit.end", check.Old, steps.OutcomeRolledBack},
		{"restore.finish.begin", check.New, steps.OutcomeCommitted},
	} {
		t.Run(tc.point, func(t *testing.T) {
			tg, backup := setup(t)
			if got, err := tg.Expect(); err != nil || got != check.Old {
				t.Fatalf("before any run: Expect = %s, %v; want old", got, err)
			}
			crashAt(t, tg, backup, tc.point)
			want, err := tg.Expect()
			if err != nil || want != tc.want {
				t.Fatalf("killed at %s: Expect = %s, %v; want %s", tc.point, want, err, tc.want)
			}
			if _, err := tg.Recovered(); !errors.Is(err, check.ErrViolated) {
				t.Errorf("before recovery, with a run in flight: Recovered = %v, want ErrViolated", err)
			}
			if _, err := kvrflow.Recover(context.Background(), kvrflow.Options{DB: tg.DB}); err != nil {
				t.Fatal(err)
			}
			rep, err := tg.Recovered()
			if err != nil || rep.DB != want || rep.Outcome != tc.outcome || rep.Runs != 1 {
				t.Fatalf("after recovery: %+v, %v; want DB %s, outcome %s, 1 run", rep, err, want, tc.outcome)
			}
		})
	}
}

func TestRecovered_FailsWhenTheJournalDisagreesOrARunDirIsLeft(t *testing.T) {
	tg, backup := setup(t)
	saved := filepath.Join(filepath.Dir(tg.DB), "saved-old")
	if err := os.CopyFS(saved, os.DirFS(tg.DB)); err != nil {
		t.Fatal(err)
	}
	if _, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: tg.DB, Source: backup}); err != nil {
		t.Fatal(err)
	}
	if rep, err := tg.Recovered(); err != nil || rep.DB != check.New {
		t.Fatalf("after a restore: %+v, %v", rep, err)
	}
	staging := tg.DB + ".kvrflow/staging-9"
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Recovered(); !errors.Is(err, check.ErrViolated) || !strings.Contains(err.Error(), "staging-9") {
		t.Errorf("with staging left: %v, want ErrViolated naming it", err)
	}
	if err := os.Remove(staging); err != nil {
		t.Fatal(err)
	}
	// The journal says committed; put the old database back.
	if err := os.RemoveAll(tg.DB); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(saved, tg.DB); err != nil {
		t.Fatal(err)
	}
	if got, err := tg.Which(); err != nil || got != check.Old {
		t.Fatalf("Which = %s, %v; want old", got, err)
	}
	if _, err := tg.Recovered(); !errors.Is(err, check.ErrViolated) {
		t.Errorf("old database, committed run: %v, want ErrViolated", err)
	}
}

func TestWhich_NeitherDatabaseOrAMissingOneIsAViolation(t *testing.T) {
	tg, _ := setup(t)
	// One byte of one table changed: the keys may still read, the files
	// differ.
	names, _ := filepath.Glob(filepath.Join(tg.DB, "*.sst"))
	if len(names) == 0 {
		t.Fatal("no table")
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(names[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := tg.Which(); !errors.Is(err, check.ErrViolated) {
		t.Errorf("a changed table: Which = %s, %v; want ErrViolated", got, err)
	}
	if err := os.RemoveAll(tg.DB); err != nil {
		t.Fatal(err)
	}
	if got, err := tg.Which(); !errors.Is(err, check.ErrViolated) {
		t.Errorf("no DB: Which = %s, %v; want ErrViolated", got, err)
	}
	tg.Old = check.Database{Absent: true}
	if got, err := tg.Which(); err != nil || got != check.Old {
		t.Errorf("no DB, none before: Which = %s, %v; want old", got, err)
	}
	tg.Old = tg.New
	if err := os.MkdirAll(filepath.Dir(tg.DB), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.MakeDB(t, vfs.Default, tg.DB, 2, 150)
	if _, err := tg.Which(); !errors.Is(err, check.ErrBadTarget) {
		t.Errorf("old and new the same: %v, want ErrBadTarget", err)
	}
}

func TestDigest_LeavesOutLOCKAndSeesEveryByte(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		f, err := fs.Create("/d/"+name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write("a", "hello")
	before, err := check.Digest(fs, "/d")
	if err != nil {
		t.Fatal(err)
	}
	write("LOCK", "")
	if after, _ := check.Digest(fs, "/d"); !check.Equal(before, after) {
		t.Errorf("LOCK counted: %v vs %v", before, after)
	}
	write("a", "hellp")
	if after, _ := check.Digest(fs, "/d"); check.Equal(before, after) {
		t.Errorf("a changed byte is not seen: %v", after)
	}
}
