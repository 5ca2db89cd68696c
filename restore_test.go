package kvrflow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// fixture is an old database and a backup of another one, on fs.
type fixture struct {
	fs       vfs.FS
	root     string
	db       string
	backup   string
	journal  string
	old, new map[string]string
}

func newFixture(tb testing.TB, fs vfs.FS, root string) *fixture {
	tb.Helper()
	f := &fixture{fs: fs, root: root, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup")}
	testutil.MkdirDurable(tb, fs, filepath.Join(root, "node"))
	src := filepath.Join(root, "src")
	f.new = testutil.MakeDB(tb, fs, src, 2, 300)
	if _, err := Backup(context.Background(), src, f.backup, fs); err != nil {
		tb.Fatal(err)
	}
	f.old = testutil.MakeDB(tb, fs, f.db, 1, 200)
	return f
}

func (f *fixture) opts() Options {
	return Options{DB: f.db, Source: f.backup, FS: f.fs, Journal: f.journal}
}

func TestRestore_MemFSReplacesDatabase(t *testing.T) {
	fs := vfs.NewCrashableMem()
	f := newFixture(t, fs, "/r")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	res, err := Restore(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Outcome != steps.OutcomeCommitted || res.Run.State != steps.StateDone {
		t.Fatalf("run = %+v", res.Run)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
		t.Fatalf("db has %d keys, want the backup's %d", len(got), len(f.new))
	}
	names, _ := fs.List(f.db + ".kvrflow")
	for _, n := range names {
		if n != "lock" {
			t.Errorf("leftover in work dir: %s", n)
		}
	}
}

func TestRestore_DiskExchangesDatabase(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	res, err := Restore(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatalf("db has %d keys, want the backup's %d", len(got), len(f.new))
	}
	j, err := journal.Open(filepath.Join(f.db+".kvrflow", "journal.db"), journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	evs, err := j.Events(res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var plan string
	for _, ev := range evs {
		if ev.Event == "note" {
			plan = string(ev.Details)
		}
	}
	if want := `"plan":"exchange"`; !strings.Contains(plan, want) {
		t.Fatalf("commit plan %s, want %s", plan, want)
	}
	if _, err := os.Stat(f.db + ".kvrflow/staging-1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging left: %v", err)
	}
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

func openJournalRO(t *testing.T, db string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestRestore_VerifyOpenSkipsCheckLevelsAndSaysSo: --verify open restores
// the backup and journals that only the open check ran.
func TestRestore_VerifyOpenSkipsCheckLevelsAndSaysSo(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	o := f.opts()
	o.Verify = steps.VerifyOpen
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("database is not the backup's")
	}
	if d := journalDetail(t, f.db, res.Run.ID, "verified"); !strings.Contains(d, "CheckLevels skipped") {
		t.Fatalf("verify details %s", d)
	}
	if d := journalDetail(t, f.db, res.Run.ID, "written"); !strings.Contains(d, `"name":"000005.sst"`) {
		t.Fatalf("write details %s: want the files listed", d)
	}
}

// TestBackup_RefusesABackup: backing up a backup would open it as a
// database and write into it.
func TestBackup_RefusesABackup(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	before := testutil.Snapshot(t, vfs.Default, f.backup)
	_, err := Backup(context.Background(), f.backup, filepath.Join(f.root, "b2"), nil)
	if !errors.Is(err, steps.ErrBadPath) || !strings.Contains(err.Error(), "is a kvrflow backup") {
		t.Fatalf("err = %v", err)
	}
	if !testutil.Equal(before, testutil.Snapshot(t, vfs.Default, f.backup)) {
		t.Fatal("backup changed")
	}
}

// TestRestore_ReportsItsSyncs: the result counts the fsyncs through the
// seam and the journal's commits; a restore journals 8 records plus its
// Begin, one commit each.
func TestRestore_ReportsItsSyncs(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	o := f.opts()
	o.Mode = steps.ModeCopy
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Syncs
	files, _ := filepath.Glob(filepath.Join(f.backup, "*"))
	copied := int64(len(files) - 1) // every file but the manifest, each fsynced once
	if s.Files != copied || s.Dirs < 4 || s.JournalCommits != int64(res.Run.Events)+1 {
		t.Fatalf("syncs %+v for a run of %d events", s, res.Run.Events)
	}
	t.Logf("syncs: %+v over %d journal records", s, res.Run.Events)
}
