package kvrflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// needLdb returns the path of ldb. Outside CI a missing ldb skips the
// test; under CI (CI=true), where .ci/run installs rocksdb-tools, it fails.
func needLdb(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ldb")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("ldb not on PATH under CI: .ci/run must install rocksdb-tools")
	}
	t.Skip("ldb (Debian rocksdb-tools) not on PATH; apt-get install rocksdb-tools to run the RocksDB tests")
	return ""
}

func ldb(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(needLdb(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ldb %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeRocksDB creates a RocksDB database in dir with n keys derived from
// seed, loaded in three batches so it has several tables, and returns the
// output of `ldb scan`.
func makeRocksDB(t testing.TB, dir string, seed uint64, n, valueLen int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	for batch := 0; batch < 3; batch++ {
		var b strings.Builder
		for i := batch; i < n; i += 3 {
			v := make([]byte, valueLen/2)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			fmt.Fprintf(&b, "key-%07d ==> %x\n", i, v)
		}
		ldb(t, b.String(), "--db="+dir, "--create_if_missing", "load")
	}
	return scan(t, dir)
}

func scan(t testing.TB, dir string) string {
	t.Helper()
	return ldb(t, "", "--db="+dir, "scan")
}

// rocksFixture is an old RocksDB database at DB and a BackupEngine backup
// and a checkpoint of another.
type rocksFixture struct {
	root, db, backup, checkpoint string
	old, new                     string // ldb scan outputs
}

func newRocksFixture(t testing.TB, n, valueLen int) *rocksFixture {
	t.Helper()
	root := t.TempDir()
	f := &rocksFixture{root: root, db: filepath.Join(root, "node", "db"),
		backup: filepath.Join(root, "backup"), checkpoint: filepath.Join(root, "checkpoint")}
	must(t, os.MkdirAll(filepath.Dir(f.db), 0o755))
	src := filepath.Join(root, "src")
	f.new = makeRocksDB(t, src, 2, n, valueLen)
	ldb(t, "", "--db="+src, "backup", "--backup_dir="+f.backup)
	ldb(t, "", "--db="+src, "checkpoint", "--checkpoint_dir="+f.checkpoint)
	f.old = makeRocksDB(t, f.db, 1, n/2, valueLen)
	if f.old == f.new {
		t.Fatal("old and new databases are equal")
	}
	return f
}

func TestRocksDB_BackupRoundTripWithLdb(t *testing.T) {
	f := newRocksFixture(t, 600, 64)
	res, err := Restore(context.Background(), Options{DB: f.db, Source: f.backup})
	if err != nil {
		t.Fatal(err)
	}
	if got := scan(t, f.db); got != f.new {
		t.Fatalf("ldb scan of the restored database differs from the source's (%d vs %d bytes)", len(got), len(f.new))
	}
	if res.Run.Engine != steps.EngineAuto {
		t.Errorf("run engine %q", res.Run.Engine)
	}
	verify := journalDetail(t, f.db, res.Run.ID, "ready")
	if !strings.Contains(verify, "ldb checkconsistency OK") {
		t.Errorf("verify details %s: want ldb checkconsistency recorded", verify)
	}
	if pre := journalDetail(t, f.db, res.Run.ID, "checked"); !strings.Contains(pre, `"kind":"rocksdb-backup"`) || !strings.Contains(pre, `"backup_id":1`) {
		t.Errorf("precheck details %s: want kind rocksdb-backup, backup 1", pre)
	}
}

func TestRocksDB_CheckpointRoundTripWithLdb(t *testing.T) {
	f := newRocksFixture(t, 600, 64)
	res, err := Restore(context.Background(), Options{DB: f.db, Source: f.checkpoint, Engine: steps.EngineRocksDB})
	if err != nil {
		t.Fatal(err)
	}
	if got := scan(t, f.db); got != f.new {
		t.Fatal("ldb scan of the restored database differs from the checkpoint's")
	}
	// The checkpoint records no checksums: Precheck measured them and
	// journaled them before Write.
	if pre := journalDetail(t, f.db, res.Run.ID, "checked"); !strings.Contains(pre, `"measured":[`) || !strings.Contains(pre, "CURRENT") {
		t.Errorf("precheck details %s: want every measured file journaled", pre)
	}
}

// TestRocksDB_LinkAtVerifySizeReadsNoTableData: a link-mode restore at
// --verify size of a BackupEngine backup and of a checkpoint reads no byte
// of any table (only footers, with ReadAt), restores the database, and
// journals every linked table as unchecked.
func TestRocksDB_LinkAtVerifySizeReadsNoTableData(t *testing.T) {
	f := newRocksFixture(t, 600, 64)
	for _, src := range []string{f.backup, f.checkpoint} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "db")
			var reads atomic.Int64
			fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpFileRead && strings.HasPrefix(op.Path, src+"/") && strings.HasSuffix(op.Path, ".sst") {
					reads.Add(1)
				}
				return nil
			}))
			res, err := Restore(context.Background(), Options{DB: db, Source: src, FS: fs, Mode: steps.ModeLink, Verify: steps.VerifySize})
			if err != nil {
				t.Fatal(err)
			}
			if got := scan(t, db); got != f.new {
				t.Fatal("ldb scan of the restored database differs from the source's")
			}
			if n := reads.Load(); n != 0 {
				t.Errorf("%d sequential reads of the source's tables, want none", n)
			}
			pre := journalDetail(t, db, res.Run.ID, "checked")
			if !strings.Contains(pre, `"verify":"size"`) || !strings.Contains(pre, `"footers":`) {
				t.Errorf("precheck details %s: want verify size and footers counted", pre)
			}
			written := journalDetail(t, db, res.Run.ID, "written")
			var wd steps.WriteDetails
			must(t, json.Unmarshal([]byte(written), &wd))
			for _, w := range wd.Files {
				if w.Linked != w.Unchecked {
					t.Errorf("written file %+v: want every linked table, and only those, journaled crc32c_unchecked", w)
				}
			}
		})
	}
}

// TestRocksDB_CheckpointChangedDuringCopyRollsBack: a checkpoint records
// no checksums, so Precheck measures each file; one that changes before
// Write copies it is caught as the source changing (ErrChecksum, exit 1),
// not as an invalid backup, and the database is unchanged.
func TestRocksDB_CheckpointChangedDuringCopyRollsBack(t *testing.T) {
	f := newRocksFixture(t, 300, 64)
	m, _ := filepath.Glob(filepath.Join(f.checkpoint, "*.sst"))
	target := m[0]
	var opens atomic.Int32
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		// The first open is Precheck's measure, the second Write's copy.
		if op.Kind == errorfs.OpOpen && op.Path == target && opens.Add(1) == 2 {
			b, err := os.ReadFile(target)
			if err == nil {
				b[len(b)/2] ^= 1
				err = os.WriteFile(target, b, 0o644)
			}
			if err != nil {
				t.Error(err)
			}
		}
		return nil
	}))
	before := testutil.Snapshot(t, vfs.Default, f.db)
	_, err := Restore(context.Background(), Options{DB: f.db, Source: f.checkpoint, FS: fs, Mode: steps.ModeCopy})
	if !errors.Is(err, steps.ErrChecksum) || errors.Is(err, steps.ErrBadSource) || !IsRolledBack(err) {
		t.Fatalf("err = %v, want a rolled-back checksum mismatch, not an invalid backup", err)
	}
	if !strings.Contains(err.Error(), "changed while being copied") {
		t.Errorf("message %q: want the cause named", err)
	}
	if !testutil.Equal(before, testutil.Snapshot(t, vfs.Default, f.db)) {
		t.Fatal("database changed")
	}
}

// TestRocksDB_MetaVariants restores the same backup rewritten as schema 2
// (with size and temp fields and a footer), and with legacy
// <number>_<crc32c>_<size>.sst shared_checksum names; and refuses one with
// an ni:: field and one with an excluded file.
func TestRocksDB_MetaVariants(t *testing.T) {
	f := newRocksFixture(t, 300, 64)
	entries := readMeta(t, f.backup)
	variants := []struct {
		name    string
		rewrite func(t *testing.T, dir string) string // returns the meta text
		wantErr string
	}{
		{"schema 2 with sizes, temp and footer", func(t *testing.T, dir string) string {
			var b strings.Builder
			b.WriteString("schema_version 2.1\n1700000000\n52\nsome_future_field x\n")
			fmt.Fprintf(&b, "%d\n", len(entries))
			for _, e := range entries {
				fmt.Fprintf(&b, "%s crc32 %d size %d temp kWarm\n", e.path, e.crc, e.size)
			}
			b.WriteString("// FOOTER\nchecksum_of_meta 0\n")
			return b.String()
		}, ""},
		{"legacy shared_checksum names", func(t *testing.T, dir string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "1700000000\n52\n%d\n", len(entries))
			for _, e := range entries {
				p := e.path
				if strings.HasPrefix(p, "shared_checksum/") {
					num, _, _ := strings.Cut(filepath.Base(p), "_")
					legacy := fmt.Sprintf("shared_checksum/%s_%d_%d.sst", num, e.crc, e.size)
					must(t, os.Rename(filepath.Join(dir, p), filepath.Join(dir, legacy)))
					p = legacy
				}
				fmt.Fprintf(&b, "%s crc32 %d\n", p, e.crc)
			}
			return b.String()
		}, ""},
		{"ni:: file field refused", func(t *testing.T, dir string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "schema_version 2\n1700000000\n52\n%d\n", len(entries))
			for i, e := range entries {
				extra := ""
				if i == 0 {
					extra = " ni::file_name_escape uri_percent"
				}
				fmt.Fprintf(&b, "%s crc32 %d%s\n", e.path, e.crc, extra)
			}
			return b.String()
		}, "non-ignorable"},
		{"excluded file refused", func(t *testing.T, dir string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "schema_version 2\n1700000000\n52\n%d\n", len(entries))
			for _, e := range entries {
				fmt.Fprintf(&b, "%s crc32 %d\n", e.path, e.crc)
			}
			b.WriteString("shared_checksum/000099_s1_10.sst ni::excluded true\n")
			return b.String()
		}, "excluded"},
		{"count mismatch refused", func(t *testing.T, dir string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "1700000000\n52\n%d\n", len(entries)+1)
			for _, e := range entries {
				fmt.Fprintf(&b, "%s crc32 %d\n", e.path, e.crc)
			}
			return b.String()
		}, "count says"},
		{"path traversal refused", func(t *testing.T, dir string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "1700000000\n52\n%d\n", len(entries))
			for i, e := range entries {
				p := e.path
				if i == 0 {
					p = "private/1/../../../etc/passwd"
				}
				fmt.Fprintf(&b, "%s crc32 %d\n", p, e.crc)
			}
			return b.String()
		}, "unsafe path"},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backup")
			must(t, os.CopyFS(dir, os.DirFS(f.backup)))
			must(t, os.WriteFile(filepath.Join(dir, "meta", "1"), []byte(v.rewrite(t, dir)), 0o644))
			db := filepath.Join(t.TempDir(), "db")
			must(t, os.CopyFS(db, os.DirFS(f.db)))
			before := testutil.Snapshot(t, vfs.Default, db)
			_, err := Restore(context.Background(), Options{DB: db, Source: dir})
			if v.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := scan(t, db); got != f.new {
					t.Fatal("restored database differs from the source's")
				}
				return
			}
			if !errors.Is(err, steps.ErrBadSource) || !strings.Contains(err.Error(), v.wantErr) {
				t.Fatalf("err = %v, want invalid backup naming %q", err, v.wantErr)
			}
			if after := testutil.Snapshot(t, vfs.Default, db); !testutil.Equal(before, after) {
				t.Fatal("database changed")
			}
		})
	}
}

// TestRocksDB_BadInput: a bit flip in an .sst and a missing private/ file
// are refused with the database unchanged.
func TestRocksDB_BadInput(t *testing.T) {
	f := newRocksFixture(t, 300, 64)
	cases := map[string]func(t *testing.T, dir string){
		"bit flip in an sst": func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "shared_checksum", "*.sst"))
			flipByte(t, m[0], 3, 4)
		},
		"bit flip in an sst, copy mode (caught while copying)": func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "shared_checksum", "*.sst"))
			flipByte(t, m[0], 3, 4)
		},
		"missing private file": func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "private", "1", "MANIFEST-*"))
			must(t, os.Remove(m[0]))
		},
	}
	for name, prep := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backup")
			must(t, os.CopyFS(dir, os.DirFS(f.backup)))
			prep(t, dir)
			before := testutil.Snapshot(t, vfs.Default, f.db)
			o := Options{DB: f.db, Source: dir}
			if strings.Contains(name, "copy mode") {
				o.Mode = steps.ModeCopy
			}
			_, err := Restore(context.Background(), o)
			if !errors.Is(err, steps.ErrBadSource) {
				t.Fatalf("err = %v, want invalid backup", err)
			}
			if !testutil.Equal(before, testutil.Snapshot(t, vfs.Default, f.db)) {
				t.Fatal("database changed")
			}
		})
	}
}

// TestRocksDB_PowerLossMatrix runs the power-loss matrix with a RocksDB
// BackupEngine source: the backup's bytes (made by ldb) are put on a
// crashable MemFS, and after each crash and recovery the database
// directory must be byte for byte the old one or the restored one.
func TestRocksDB_PowerLossMatrix(t *testing.T) {
	rf := newRocksFixture(t, 300, 64)
	base := vfs.NewCrashableMem()
	f := &fixture{fs: base, root: "/k", db: "/k/node/db", backup: "/k/backup"}
	copyToMem(t, base, rf.backup, f.backup)
	copyToMem(t, base, rf.db, f.db)
	oldFiles, err := check.Digest(base, f.db)
	must(t, err)
	// The restored database, as an uncrashed restore leaves it.
	probe := base.CrashClone(vfs.CrashCloneCfg{})
	if _, err := Restore(context.Background(), Options{DB: f.db, Source: f.backup, FS: probe, Journal: filepath.Join(t.TempDir(), "p.db")}); err != nil {
		t.Fatal(err)
	}
	newFiles, err := check.Digest(probe, f.db)
	must(t, err)
	jpath := filepath.Join(t.TempDir(), "journal.db")
	points, err := recordCrashPoints(t, base.CrashClone(vfs.CrashCloneCfg{}), Options{DB: f.db, Source: f.backup, Journal: jpath, Mode: steps.ModeCopy}, *crashSeed)
	if err != nil {
		t.Fatal(err)
	}
	stride := 1
	if testing.Short() {
		stride = 3
	}
	counts := map[string]int{}
	for i := 0; i < len(points); i += stride {
		cp := points[i]
		jp := filepath.Join(t.TempDir(), "journal.db")
		if cp.journal != nil {
			must(t, os.WriteFile(jp, cp.journal, 0o600))
		}
		where := fmt.Sprintf("crash point %d (%s, %d%%)", cp.index, cp.op, cp.percent)
		// Byte for byte: the old files or the restored ones.
		tg := check.Target{FS: cp.fs, DB: f.db, Journal: jp, Old: check.Database{Files: oldFiles}, New: check.Database{Files: newFiles}}
		want, err := tg.Expect()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if _, err := Recover(context.Background(), Options{DB: f.db, FS: cp.fs, Journal: jp}); err != nil {
			t.Fatalf("%s: recover: %v", where, err)
		}
		rep, err := tg.Recovered()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if rep.DB != want {
			t.Fatalf("%s: recovery left the %s database; the journal at the crash said %s", where, rep.DB, want)
		}
		counts[string(rep.DB)]++
	}
	if counts["old"] == 0 || counts["new"] == 0 {
		t.Fatalf("outcomes %v: want both", counts)
	}
	t.Logf("RocksDB power-loss matrix: %d crash points, %d checked: %v", len(points), (len(points)+stride-1)/stride, counts)
}

// TestRocksDB_LdbRestoreKilledMidwayVersusKvrflow is the reason kvrflow
// exists. `ldb restore` deletes the live files, then copies the backup in
// place: killed once the old CURRENT is gone and the new one not yet
// written, it leaves a database ldb cannot open. kvrflow killed while it
// copies leaves the old database, complete.
func TestRocksDB_LdbRestoreKilledMidwayVersusKvrflow(t *testing.T) {
	f := newRocksFixture(t, 6000, 4096)
	// ldb restore, killed mid-way.
	victim := filepath.Join(t.TempDir(), "db")
	must(t, os.CopyFS(victim, os.DirFS(f.db)))
	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		if attempt > 0 {
			must(t, os.RemoveAll(victim))
			must(t, os.CopyFS(victim, os.DirFS(f.db)))
		}
		cmd := exec.Command(needLdb(t), "--db="+victim, "restore", "--backup_dir="+f.backup, "--num_threads=1")
		must(t, cmd.Start())
		for {
			names, _ := os.ReadDir(victim)
			hasCurrent, hasSST := false, false
			for _, n := range names {
				hasCurrent = hasCurrent || n.Name() == "CURRENT"
				hasSST = hasSST || strings.HasSuffix(n.Name(), ".sst")
			}
			if !hasCurrent && hasSST {
				_ = cmd.Process.Kill()
				killed = true
				break
			}
			if cmd.ProcessState != nil || processDone(cmd) {
				break
			}
		}
		_ = cmd.Wait()
	}
	if !killed {
		t.Fatal("could not catch ldb restore between deleting the old files and writing the new CURRENT")
	}
	out, err := exec.Command("ldb", "--db="+victim, "scan").CombinedOutput()
	if err == nil && bytes.Equal(out, []byte(f.old)) {
		t.Fatal("ldb restore killed mid-way still left the old database: the side-by-side shows nothing")
	}
	if err == nil {
		t.Fatalf("ldb restore killed mid-way left a database ldb can open:\n%.200s", out)
	}
	t.Logf("ldb restore killed mid-way: ldb scan fails: %s", firstLine(out))

	// kvrflow, killed at the same point: while it copies the tables.
	crashAt(t, Options{DB: f.db, Source: f.backup, Mode: steps.ModeCopy}, "fs.write@3")
	if _, err := Recover(context.Background(), Options{DB: f.db}); err != nil {
		t.Fatal(err)
	}
	if got := scan(t, f.db); got != f.old {
		t.Fatal("kvrflow killed mid-way and recovered: the database is not the old one")
	}
	t.Log("kvrflow killed mid-way: recovered, ldb scan gives the old database, complete")
}

func processDone(cmd *exec.Cmd) bool {
	// Signal 0 probes whether the process still exists (it is a zombie
	// until Wait, so also look at its state in /proc).
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	return err != nil || strings.Contains(string(b), ") Z ")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

type metaEntry struct {
	path string
	crc  uint32
	size int64
}

// readMeta returns the files of backup 1 with their crc32c and size,
// computed from the files themselves.
func readMeta(t *testing.T, backup string) []metaEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backup, "meta", "1"))
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var out []metaEntry
	for _, l := range lines[3:] {
		p, _, _ := strings.Cut(l, " ")
		data, err := os.ReadFile(filepath.Join(backup, p))
		must(t, err)
		out = append(out, metaEntry{p, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)), int64(len(data))})
	}
	return out
}

func copyToMem(t *testing.T, fs vfs.FS, from, to string) {
	t.Helper()
	var paths []string
	must(t, filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		fi, err := os.Stat(p)
		must(t, err)
		if fi.IsDir() {
			testutil.MkdirDurable(t, fs, dst)
			continue
		}
		if strings.HasPrefix(filepath.Base(p), "LOG") || filepath.Base(p) == "LOCK" {
			continue
		}
		data, err := os.ReadFile(p)
		must(t, err)
		w, err := fs.Create(dst, vfs.WriteCategoryUnspecified)
		must(t, err)
		_, err = w.Write(data)
		must(t, err)
		must(t, w.Sync())
		must(t, w.Close())
		d, err := fs.OpenDir(filepath.Dir(dst))
		must(t, err)
		must(t, d.Sync())
		d.Close()
	}
}

// journalDetail returns the details of run id's transition by event.
func journalDetail(t *testing.T, db string, id uint64, event string) string {
	t.Helper()
	j := openJournalRO(t, db)
	defer j.Close()
	evs, err := j.Events(id)
	must(t, err)
	for _, ev := range evs {
		if ev.Event == event {
			return string(ev.Details)
		}
	}
	t.Fatalf("run %d has no %s event", id, event)
	return ""
}

// TestRocksDB_StatusSaysWhichVerificationRanAndFindsKvrocksTmp: after a
// RocksDB restore, status names the check that ran; a stale db.tmp beside
// the database is reported as a leftover, then quarantined intact by the
// next restore.
func TestRocksDB_StatusSaysWhichVerificationRanAndFindsKvrocksTmp(t *testing.T) {
	f := newRocksFixture(t, 200, 64)
	if _, err := Restore(context.Background(), Options{DB: f.db, Source: f.backup}); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(f.db+".tmp", 0o755))
	must(t, os.WriteFile(filepath.Join(f.db+".tmp", "CURRENT"), []byte("MANIFEST-000001\n"), 0o644))
	st, err := Status(Options{DB: f.db})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.LastVerification, "ldb checkconsistency OK") {
		t.Errorf("last verification %q", st.LastVerification)
	}
	if len(st.Leftovers) != 1 || st.Leftovers[0] != f.db+".tmp" {
		t.Errorf("leftovers %v, want the stale %s.tmp", st.Leftovers, f.db)
	}
	res, err := Restore(context.Background(), Options{DB: f.db, Source: f.checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(f.db+".kvrflow", "quarantine", fmt.Sprintf("run%d-db.tmp", res.Run.ID), "CURRENT")
	if b, err := os.ReadFile(q); err != nil || string(b) != "MANIFEST-000001\n" {
		t.Errorf("quarantined db.tmp: %q, %v", b, err)
	}
}
