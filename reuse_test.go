package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// noteEveryFile makes Write journal each file as it completes (tests:
// the small files of a fixture complete within one batch period).
func noteEveryFile(t *testing.T) {
	t.Helper()
	every, bytes := steps.NoteEvery, steps.NoteBytes
	steps.NoteEvery, steps.NoteBytes = 0, 0
	t.Cleanup(func() { steps.NoteEvery, steps.NoteBytes = every, bytes })
}

// trashIn lists the trash directories in db's kvrflow directory.
func trashIn(fs vfs.FS, db string) []string {
	names, _ := fs.List(db + ".kvrflow")
	var out []string
	for _, n := range names {
		if rd, ok := steps.ParseRunDir(n); ok && rd.Kind == "trash" {
			out = append(out, n)
		}
	}
	return out
}

// TestRestore_ResumesWhatAFailedWriteJournaled fails a restore's Write
// after its third batch note: the rollback sets the staging aside as
// trash, the database stays the old one, and a restore of the same source
// reuses the files journaled complete, transfers only the rest, and
// removes the trash.
func TestRestore_ResumesWhatAFailedWriteJournaled(t *testing.T) {
	noteEveryFile(t)
	for _, onDisk := range []bool{false, true} {
		fs, root := vfs.FS(vfs.NewCrashableMem()), "/r"
		if onDisk {
			fs, root = vfs.Default, t.TempDir()
		}
		testResumesWhatAFailedWriteJournaled(t, fs, root)
	}
}

func testResumesWhatAFailedWriteJournaled(t *testing.T, fs vfs.FS, root string) {
	f := newFixture(t, fs, root)
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@3"
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore with a failing note: %v, want rolled back", err)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.old) {
		t.Fatal("the failed restore changed the database")
	}
	if tr := trashIn(fs, f.db); len(tr) != 1 {
		t.Fatalf("trash after the failure: %v, want the partial staging", tr)
	}
	res, err := Restore(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sum := res.Summary
	if sum.Resumed == 0 || sum.Transferred+sum.Resumed != sum.Bytes || sum.Delta != 0 {
		t.Fatalf("resumed restore: %+v, want some bytes resumed and the rest transferred", sum)
	}
	t.Logf("resumed: %d of %d bytes transferred, %d resumed", sum.Transferred, sum.Bytes, sum.Resumed)
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the resumed restore did not give the backup's database")
	}
	if tr := trashIn(fs, f.db); len(tr) != 0 {
		t.Fatalf("trash left after the resumed restore: %v", tr)
	}
}

// TestRestore_AnotherSourceRemovesTheTrash: the partial staging of a
// failed restore is not resumed by a restore of another backup, which
// removes it first.
func TestRestore_AnotherSourceRemovesTheTrash(t *testing.T) {
	noteEveryFile(t)
	fs := vfs.NewCrashableMem()
	f := newFixture(t, fs, "/a")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@2"
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore with a failing note: %v, want rolled back", err)
	}
	other := "/a/backup2"
	copyDir(t, fs, f.backup, other)
	opts.Source = other
	res, err := Restore(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Resumed != 0 {
		t.Fatalf("a restore of another source resumed %d bytes", res.Summary.Resumed)
	}
	if tr := trashIn(fs, f.db); len(tr) != 0 {
		t.Fatalf("trash left: %v", tr)
	}
}

func copyDir(t *testing.T, fs vfs.FS, from, to string) {
	t.Helper()
	testutil.MkdirDurable(t, fs, to)
	names, err := fs.List(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := vfs.CopyAcrossFS(fs, filepath.Join(from, n), fs, filepath.Join(to, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestore_PowerLossInWriteThenRecoverThenResume crashes a restore
// (power loss) at every point of its Write, recovers (the old database
// back at once, the partial staging kept as trash), then restores the
// same source again: the database is the backup's, and a run that
// crashed after journaling files resumes them. Each resumed run is then
// itself crashed at every point and recovered (a double crash): the
// database is the one its journal decides.
func TestRestore_PowerLossInWriteThenRecoverThenResume(t *testing.T) {
	noteEveryFile(t)
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, "/p")
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	points, err := recordCrashPoints(t, base.CrashClone(vfs.CrashCloneCfg{}), opts, *crashSeed)
	if err != nil {
		t.Fatal(err)
	}
	stride, doubleStride := 1, 1
	if testing.Short() {
		stride, doubleStride = 5, 12
	}
	resumed, doubles := 0, 0
	for i := 0; i < len(points); i += stride {
		cp := points[i]
		if !strings.Contains(cp.op, "staging-") {
			continue // only the crashes while staging is written
		}
		if outcome := checkRecovered(t, f, cp); outcome != steps.OutcomeRolledBack {
			continue
		}
		jpath := filepath.Join(t.TempDir(), "journal.db")
		mustCopyJournal(t, cp, jpath)
		if _, err := Recover(context.Background(), Options{DB: f.db, FS: cp.fs, Journal: jpath}); err != nil {
			t.Fatal(err)
		}
		again := opts
		again.FS, again.Journal = cp.fs, jpath
		// The resumed restore, recorded: its own crash points are the
		// double crashes.
		var res *Result
		rpoints, err := recordCrashPointsOf(t, cp.fs, jpath, *crashSeed+uint64(i), func(v vfs.FS) error {
			o := again
			o.FS = v
			var err error
			res, err = Restore(context.Background(), o)
			return err
		})
		if err != nil {
			t.Fatalf("crash point %d (%s): restore after recovery: %v", cp.index, cp.op, err)
		}
		if got := testutil.ReadDB(t, cp.fs, f.db); !testutil.Equal(got, f.new) {
			t.Fatalf("crash point %d (%s): the restore after recovery did not give the backup's database", cp.index, cp.op)
		}
		if res.Summary.Resumed > 0 {
			resumed++
		}
		if i%(2*stride) != 0 {
			continue
		}
		for j := 0; j < len(rpoints); j += doubleStride {
			rcp := rpoints[j]
			rcp.op = cp.op + " then, resuming, " + rcp.op
			checkRecovered(t, f, rcp)
			doubles++
		}
	}
	if resumed == 0 {
		t.Fatal("no restore after a crash in Write resumed anything")
	}
	t.Logf("%d restores after a crash in Write resumed files; %d crashes of a resumed restore recovered", resumed, doubles)
}

func mustCopyJournal(t *testing.T, cp crashPoint, jpath string) {
	t.Helper()
	if cp.journal == nil {
		t.Fatalf("crash point %d: no journal", cp.index)
	}
	must(t, os.WriteFile(jpath, cp.journal, 0o600))
}

// deltaFixture is a database restored from a first backup, and a second
// backup of the same database after one more flush: one new table, a new
// MANIFEST, OPTIONS and WAL.
func deltaFixture(t *testing.T, fs vfs.FS, root string) (f *fixture, backup2 string) {
	t.Helper()
	f = &fixture{fs: fs, root: root, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup1"),
		journal: filepath.Join(t.TempDir(), "journal.db")}
	testutil.MkdirDurable(t, fs, filepath.Join(root, "node"))
	src := filepath.Join(root, "src")
	writeTables(t, fs, src, 0, 2000, 4)
	if _, err := Backup(context.Background(), src, f.backup, fs); err != nil {
		t.Fatal(err)
	}
	writeTables(t, fs, src, 2000, 150, 1)
	f.new = testutil.ReadDB(t, fs, src)
	backup2 = filepath.Join(root, "backup2")
	if _, err := Backup(context.Background(), src, backup2, fs); err != nil {
		t.Fatal(err)
	}
	o := f.opts()
	o.Mode = steps.ModeCopy
	if _, err := Restore(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	f.old = testutil.ReadDB(t, fs, f.db)
	return f, backup2
}

// writeTables adds keys [from, from+n) with 4 KiB random values to the
// Pebble database dir, flushed into tables tables, with automatic
// compactions off: the tables written before stay as they are.
func writeTables(t *testing.T, fs vfs.FS, dir string, from, n, tables int) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, DisableAutomaticCompactions: true, Logger: quietLog{}})
	must(t, err)
	rng := rand.New(rand.NewPCG(uint64(from), 1))
	val := make([]byte, 4096)
	for i := range n {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		must(t, db.Set(fmt.Appendf(nil, "key-%08d", from+i), val, pebble.NoSync))
		if (i+1)%(n/tables) == 0 {
			must(t, db.Flush())
		}
	}
	must(t, db.Close())
}

type quietLog struct{}

func (quietLog) Infof(string, ...any)         {}
func (quietLog) Errorf(string, ...any)        {}
func (quietLog) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// TestRestore_DeltaLinksTheTablesTheDatabaseHas restores, over a database
// restored from a first backup, a second backup that differs by one new
// table (and its MANIFEST, OPTIONS, WAL): the tables the database holds
// identical are hard-linked from it, and the bytes transferred are at
// most 15 % of the backup's. With NoDelta every byte is transferred.
func TestRestore_DeltaLinksTheTablesTheDatabaseHas(t *testing.T) {
	for _, tc := range []struct {
		fs      string
		noDelta bool
	}{{"mem", false}, {"mem", true}, {"disk", false}} {
		noDelta := tc.noDelta
		fs, root := vfs.FS(vfs.NewCrashableMem()), "/d"
		if tc.fs == "disk" {
			fs, root = vfs.Default, t.TempDir()
		}
		f, backup2 := deltaFixture(t, fs, root)
		o := f.opts()
		o.Source, o.Mode, o.NoDelta = backup2, steps.ModeCopy, noDelta
		res, err := Restore(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
			t.Fatal("the delta restore did not give the backup's database")
		}
		sum := res.Summary
		t.Logf("%s, no-delta=%v: %d of %d bytes transferred (%.1f %%), %d delta", tc.fs, noDelta, sum.Transferred, sum.Bytes, 100*float64(sum.Transferred)/float64(sum.Bytes), sum.Delta)
		switch {
		case noDelta && (sum.Delta != 0 || sum.Transferred != sum.Bytes):
			t.Fatalf("--no-delta: %+v, want every byte transferred", sum)
		case !noDelta && float64(sum.Transferred) > 0.15*float64(sum.Bytes):
			t.Fatalf("delta: %d of %d bytes transferred, want at most 15 %%", sum.Transferred, sum.Bytes)
		case sum.Transferred+sum.Delta != sum.Bytes:
			t.Fatalf("summary %+v: transferred and delta do not add up to the backup's bytes", sum)
		}
	}
}

// TestRestore_DeltaRollbackLeavesTheDatabaseAsItWas fails a delta restore
// after Verify: the database is byte for byte what it was, though its
// tables were hard-linked into staging.
func TestRestore_DeltaRollbackLeavesTheDatabaseAsItWas(t *testing.T) {
	fs := vfs.NewCrashableMem()
	f, backup2 := deltaFixture(t, fs, "/d")
	before := testutil.Snapshot(t, fs, f.db)
	o := f.opts()
	o.Source, o.Mode, o.FaultSpec = backup2, steps.ModeCopy, "restore.verify.end:eio"
	if _, err := Restore(context.Background(), o); !IsRolledBack(err) {
		t.Fatalf("restore failing after verify: %v, want rolled back", err)
	}
	if after := testutil.Snapshot(t, fs, f.db); !maps.Equal(before, after) {
		t.Fatal("a rolled-back delta restore changed the database's files")
	}
	rep, err := f.target(fs, f.journal).Recovered()
	if err != nil || rep.DB != check.Old {
		t.Fatalf("after the rollback: %+v, %v; want the old database", rep, err)
	}
	// And the retry, resuming and delta at once, commits.
	o.FaultSpec = ""
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the retry did not give the backup's database")
	}
	if s := res.Summary; s.Transferred != 0 || s.Reused != s.Bytes {
		t.Fatalf("the retry after a complete Write: %+v, want every byte reused", s)
	}
}

// TestRestore_DeltaKeepOldSharesTablesAndUndoes keeps the replaced
// database (--keep-old) after a delta restore: it shares its tables'
// inodes with the new one (tables are immutable), and undo brings it
// back intact, then redoes.
func TestRestore_DeltaKeepOldSharesTablesAndUndoes(t *testing.T) {
	fs := vfs.Default
	f, backup2 := deltaFixture(t, fs, t.TempDir())
	o := f.opts()
	o.Source, o.Mode, o.KeepOld = backup2, steps.ModeCopy, 1
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	names, _ := os.ReadDir(f.db)
	for _, n := range names {
		a, err1 := os.Stat(filepath.Join(f.db, n.Name()))
		b, err2 := os.Stat(filepath.Join(res.Summary.Kept, n.Name()))
		if err1 == nil && err2 == nil && os.SameFile(a, b) {
			shared++
		}
	}
	if res.Summary.Delta == 0 || shared == 0 {
		t.Fatalf("delta %d bytes, %d files shared by the new database and the kept one; want tables shared", res.Summary.Delta, shared)
	}
	if _, err := Undo(context.Background(), Options{DB: f.db, FS: fs, Journal: f.journal}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.old) {
		t.Fatal("undo after a delta restore did not bring the old database back")
	}
	if _, err := Undo(context.Background(), Options{DB: f.db, FS: fs, Journal: f.journal}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("redo after a delta restore did not bring the new database back")
	}
}

// TestRestore_ErrorSweepOfAResumedRestore fails operation N of a restore
// that resumes from an earlier failed run's partial copy, for N = 0, 1,
// ... until the injection no longer fires: a restore that fails is rolled
// back with the old database intact, one that succeeds holds the new one,
// and a plain restore afterwards gives the backup's database. Under
// -short every third N is tried.
func TestRestore_ErrorSweepOfAResumedRestore(t *testing.T) {
	noteEveryFile(t)
	base := vfs.NewCrashableMem()
	f := newFixture(t, base, "/s")
	jbase := filepath.Join(t.TempDir(), "journal.db")
	o := Options{DB: f.db, Source: f.backup, FS: base, Journal: jbase, Mode: steps.ModeCopy, FaultSpec: "write.batch-noted:eio@3"}
	if _, err := Restore(context.Background(), o); !IsRolledBack(err) {
		t.Fatalf("the first restore: %v, want rolled back", err)
	}
	journal, err := os.ReadFile(jbase)
	must(t, err)
	stride := int64(1)
	if testing.Short() {
		stride = 3
	}
	var failed, resumed int
	for n := int64(0); ; n += stride {
		fs := base.CrashClone(vfs.CrashCloneCfg{})
		jpath := filepath.Join(t.TempDir(), "journal.db")
		must(t, os.WriteFile(jpath, journal, 0o600))
		inj := &failNth{n: n, errno: syscall.EIO}
		opts := Options{DB: f.db, Source: f.backup, FS: errorfs.Wrap(fs, inj), Journal: jpath, Mode: steps.ModeCopy}
		res, err := Restore(context.Background(), opts)
		if !inj.fired.Load() {
			if err != nil {
				t.Fatalf("op %d: restore without injection failed: %v", n, err)
			}
			t.Logf("error sweep of a resumed restore: %d operations; %d failed and rolled back; %d resumed despite an error", n, failed, resumed)
			if failed == 0 {
				t.Fatal("no injected error made a resumed restore fail")
			}
			return
		}
		want := check.New
		switch {
		case err == nil:
			if res.Summary.Resumed > 0 {
				resumed++
			}
		case errors.Is(err, fsm.ErrInFlight):
			t.Fatalf("op %d: run left in flight: %v", n, err)
		default:
			failed++
			want = check.Old
		}
		if rep, cerr := f.target(fs, jpath).Recovered(); cerr != nil || rep.DB != want {
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

// TestRocksDB_DeltaRestoreOfTheSameBackup restores a RocksDB BackupEngine
// backup, then the same backup again, and then its checkpoint (which
// records no checksums: Precheck measures them): the second and third
// restores hard-link every table from the database they replace, and
// ldb reads the backup's database.
func TestRocksDB_DeltaRestoreOfTheSameBackup(t *testing.T) {
	needLdb(t)
	f := newRocksFixture(t, 3000, 512)
	o := Options{DB: f.db, Source: f.backup, Mode: steps.ModeCopy}
	if _, err := Restore(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{f.backup, f.checkpoint} {
		o.Source = src
		res, err := Restore(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if got := scan(t, f.db); got != f.new {
			t.Fatalf("%s: ldb scan of the restored database differs from the source's", src)
		}
		sum := res.Summary
		t.Logf("%s: %d of %d bytes transferred, %d delta", filepath.Base(src), sum.Transferred, sum.Bytes, sum.Delta)
		if sum.Delta == 0 || sum.Transferred+sum.Delta != sum.Bytes {
			t.Fatalf("%s: %+v; want the tables linked from the database, the rest transferred", src, sum)
		}
	}
}

// TestRestore_ResumesALargeFileMidWay fails a restore while it copies a
// 24 MiB file, after its progress was journaled every 4 MiB: the restore
// run again continues that file from the last offset journaled (its
// prefix checked by crc32c), and the whole file's crc32c is still
// compared with the backup's.
func TestRestore_ResumesALargeFileMidWay(t *testing.T) {
	every := steps.PartialEvery
	steps.PartialEvery = 4 << 20
	t.Cleanup(func() { steps.PartialEvery = every })
	defer func(w int) { steps.Workers = w }(steps.Workers)
	steps.Workers = 1
	f := newFixture(t, vfs.Default, t.TempDir())
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	const size = 24 << 20
	must(t, sampledb.AddFile(f.backup, "000999.blob", size, 7))
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@3" // the big file's third progress note
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore failing in the big file: %v, want rolled back", err)
	}
	if tr := trashIn(vfs.Default, f.db); len(tr) != 1 {
		t.Fatalf("trash after the failure: %v, want the partial staging", tr)
	}
	res, err := Restore(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sum := res.Summary
	t.Logf("resumed mid-file: %d of %d bytes transferred, %d resumed", sum.Transferred, sum.Bytes, sum.Resumed)
	if sum.Resumed < 8<<20 || sum.Transferred+sum.Resumed != sum.Bytes {
		t.Fatalf("%+v: want at least the 8 MiB journaled before the failure resumed", sum)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the resumed restore did not give the backup's database")
	}
}
