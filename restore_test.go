package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
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

// TestRestore_VerifyLevelsDoWhatTheySay: each --verify level restores
// the backup, journals its level and the check that ran, and reads what
// it promises: every backup table exactly once (in copy mode by the copy,
// in link mode by Precheck's checksum), none at all at size in link mode;
// only full reads each copy back after writing it and runs CheckLevels.
func TestRestore_VerifyLevelsDoWhatTheySay(t *testing.T) {
	for _, tc := range []struct {
		verify         string
		mode           steps.Mode
		check          string // in the verify record
		tablesRead     bool   // each backup table is read once (else never)
		copiesReadBack bool   // Write reads the copies back
	}{
		{"", steps.ModeCopy, "CheckLevels runs with --verify full", true, false},
		{steps.VerifyOpen, steps.ModeCopy, "CheckLevels runs with --verify full", true, false},
		{steps.VerifySize, steps.ModeCopy, "CheckLevels runs with --verify full", true, false},
		{steps.VerifyChecksum, steps.ModeLink, "CheckLevels runs with --verify full", true, false},
		{steps.VerifySize, steps.ModeLink, "--verify size", false, false},
		{steps.VerifyFull, steps.ModeCopy, "+ CheckLevels", true, true},
		{steps.VerifyFull, steps.ModeLink, "+ CheckLevels", true, true},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.verify, tc.mode), func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			var reads atomic.Int64   // sequential reads of backup tables
			var readAts atomic.Int64 // positioned reads of backup tables (footers)
			onePass := int64(0)      // what reading each table once takes
			tables, _ := filepath.Glob(filepath.Join(f.backup, "*.sst"))
			for _, p := range tables {
				fi, err := os.Stat(p)
				must(t, err)
				onePass += fi.Size()/fsx.BufferSize + 2 // full buffers, the rest, then EOF
			}
			o := f.opts()
			o.Verify, o.Mode = tc.verify, tc.mode
			o.Faults = fault.NewCounter()
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if strings.HasPrefix(op.Path, f.backup+"/") && strings.HasSuffix(op.Path, ".sst") {
					switch op.Kind {
					case errorfs.OpFileRead:
						reads.Add(1)
					case errorfs.OpFileReadAt:
						readAts.Add(1)
					}
				}
				return nil
			}))
			res, err := Restore(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
				t.Fatal("database is not the backup's")
			}
			want, _ := steps.ParseVerify(tc.verify)
			if d := journalDetail(t, f.db, res.Run.ID, "checked"); !strings.Contains(d, `"verify":"`+want+`"`) {
				t.Errorf("precheck details %s: want verify %s", d, want)
			}
			if d := journalDetail(t, f.db, res.Run.ID, "ready"); !strings.Contains(d, tc.check) {
				t.Errorf("verify details %s: want %q", d, tc.check)
			}
			if d := journalDetail(t, f.db, res.Run.ID, "written"); !strings.Contains(d, `.sst"`) {
				t.Errorf("write details %s: want the files listed", d)
			}
			if want := map[bool]int64{true: onePass}[tc.tablesRead]; reads.Load() != want {
				t.Errorf("%d reads of the backup's tables, want %d", reads.Load(), want)
			}
			// At size in link mode only each table's footer is read, once.
			footers := tc.verify == steps.VerifySize && tc.mode == steps.ModeLink
			if want := map[bool]int64{true: int64(len(tables))}[footers]; readAts.Load() != want {
				t.Errorf("%d positioned reads of the backup's tables, want %d", readAts.Load(), want)
			}
			if got := strings.Contains(journalDetail(t, f.db, res.Run.ID, "checked"), fmt.Sprintf(`"footers":%d`, len(tables))); got != footers {
				t.Errorf("precheck journals %d footers checked: %v, want %v", len(tables), got, footers)
			}
			if n := o.Faults.Hits()[fsx.PointReadBack]; (n > 0) != tc.copiesReadBack {
				t.Errorf("%s hit %d times, want copies read back: %v", fsx.PointReadBack, n, tc.copiesReadBack)
			}
		})
	}
}

// TestRestore_VerifyFullCatchesWhatChecksumsCannot: a table corrupted
// before its backup's manifest was written carries a matching crc32c, so
// the default level restores it (into another directory); --verify full's
// CheckLevels sees it: an invalid backup, named in one line, the run
// rolled back and the database unchanged.
func TestRestore_VerifyFullCatchesWhatChecksumsCannot(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	sst := firstSST(t, f.backup)
	flipByte(t, sst, 4, 0x40) // inside a data block, far from the footer
	resealManifest(t, f.backup)
	if _, err := Restore(context.Background(), Options{DB: filepath.Join(f.root, "other"), Source: f.backup}); err != nil {
		t.Fatalf("default level: %v (the corruption must be past what the checksums and the open see)", err)
	}
	before := testutil.Snapshot(t, vfs.Default, f.db)
	o := f.opts()
	o.Verify = steps.VerifyFull
	_, err := Restore(context.Background(), o)
	if !errors.Is(err, steps.ErrVerify) || !errors.Is(err, steps.ErrBadSource) || !IsRolledBack(err) {
		t.Fatalf("err = %v, want a rolled-back invalid backup that failed verification", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, sst) {
		t.Errorf("message %q: want one line naming %s", msg, sst)
	}
	assertUnchanged(t, before, testutil.Snapshot(t, vfs.Default, f.db))
	assertNoRunDirs(t, vfs.Default, f.db)
}

// resealManifest rewrites the manifest of the backup in dir with the
// sizes and checksums its files have now.
func resealManifest(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, manifest.Name)
	r, err := os.Open(p)
	must(t, err)
	m, err := manifest.Parse(r)
	r.Close()
	must(t, err)
	buf := make([]byte, 1<<16)
	seam := fsx.New(vfs.Default, nil)
	for i := range m.Files {
		m.Files[i].Size, m.Files[i].CRC32C, err = seam.Checksum(context.Background(), filepath.Join(dir, m.Files[i].Name), fsx.Want{}, buf)
		must(t, err)
	}
	must(t, os.WriteFile(p, m.Encode(), 0o644))
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

// TestBackup_ChecksTheCheckpointBeforeItsManifest: a backup of a database
// with a corrupt block is refused and its checkpoint removed (nothing
// restorable is left); a healthy one holds no LOCK file left by that
// check.
func TestBackup_ChecksTheCheckpointBeforeItsManifest(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "db")
	testutil.MakeDB(t, vfs.Default, db, 2, 300)
	healthy := filepath.Join(root, "healthy")
	if _, err := Backup(context.Background(), db, healthy, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(healthy, "LOCK")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LOCK in the backup: %v", err)
	}
	sst := firstSST(t, db)
	flipByte(t, sst, 4, 0x40)
	out := filepath.Join(root, "corrupt")
	_, err := Backup(context.Background(), db, out, nil)
	if !errors.Is(err, steps.ErrVerify) || !strings.Contains(err.Error(), sst[len(db):]) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want a one-line check failure naming the table", err)
	}
	if !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("message %q: want the database called corrupt", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the corrupt checkpoint was left at %s: %v", out, err)
	}
	t.Logf("error: %v", err)
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

// TestRestore_VerifyFullReadBackMismatchRollsBack: at --verify full, a
// disk that returns other bytes than were written (here: the first byte
// of each staged file read back flipped) fails the copy's read-back; the
// run is rolled back, the database unchanged, and the error is a checksum
// mismatch of the staged file, not an invalid backup.
func TestRestore_VerifyFullReadBackMismatchRollsBack(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	before := testutil.Snapshot(t, vfs.Default, f.db)
	o := f.opts()
	o.Mode, o.Verify = steps.ModeCopy, steps.VerifyFull
	o.FS = flipReadsFS{FS: vfs.Default, match: func(p string) bool { return strings.Contains(p, "/staging-") }}
	_, err := Restore(context.Background(), o)
	if !errors.Is(err, steps.ErrChecksum) || errors.Is(err, steps.ErrBadSource) || !IsRolledBack(err) {
		t.Fatalf("err = %v, want a rolled-back checksum mismatch of the read-back", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "read back") || !strings.Contains(msg, "/staging-") {
		t.Errorf("message %q: want the read-back of a staged file named", msg)
	}
	assertUnchanged(t, before, testutil.Snapshot(t, vfs.Default, f.db))
	assertNoRunDirs(t, vfs.Default, f.db)
}

// flipReadsFS is fs whose files matching match, opened for reading, return
// their first byte flipped: a disk returning other data than was written.
type flipReadsFS struct {
	vfs.FS
	match func(path string) bool
}

func (fs flipReadsFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	if err != nil || !fs.match(name) {
		return f, err
	}
	return &flipFirstByte{File: f}, nil
}

type flipFirstByte struct {
	vfs.File
	done bool
}

func (f *flipFirstByte) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 1
		f.done = true
	}
	return n, err
}
