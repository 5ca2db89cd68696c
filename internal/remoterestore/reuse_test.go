package remoterestore

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// summaryDoc is the part of restore --json these tests read.
type summaryDoc struct {
	Outcome string          `json:"outcome"`
	Summary kvrflow.Summary `json:"summary"`
}

// TestCLI_RemoteKilledHalfWayResumes restores a backup of large files
// from the S3 server through the binary, killed (SIGKILL, by a crash
// fault point) once about half its files are journaled complete; the
// same restore run again continues the interrupted run and transfers at
// most 55 % of the backup's bytes, and the database is then the backup's.
// 1 GiB (16 files of 64 MiB) outside -short.
func TestCLI_RemoteKilledHalfWayResumes(t *testing.T) {
	// Each 64 MiB file completed is a batch note of its own: killed after
	// note killAt, at least killAt-1 of them are journaled.
	n, size, killAt := 16, int64(64<<20), 9
	if testing.Short() {
		n, killAt = 6, 4
	}
	s := newServer(t)
	f := newPebbleFixture(t, nil, 200)
	for i := range n {
		must(t, sampledb.AddFile(f.backup, fmt.Sprintf("%06d.blob", 900+i), size, uint64(i+1)))
	}
	s.upload(t, f.backup, "big")
	args := []string{"restore", "--from", s.url("big"), "--db", f.db}
	r := run(t, []string{fault.EnvVar + "=" + fmt.Sprintf("write.batch-noted:crash@%d", killAt)}, args...)
	if r.code != -1 {
		t.Fatalf("want the restore killed by SIGKILL after note %d: %s", killAt, r)
	}
	r = run(t, nil, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("the re-run: %s", r)
	}
	var doc summaryDoc
	must(t, json.Unmarshal([]byte(r.stdout), &doc))
	sum := doc.Summary
	share := float64(sum.Transferred) / float64(sum.Bytes)
	t.Logf("remote re-run after a kill at note %d of %d files: %d of %d bytes transferred (%.1f %%), %d resumed",
		killAt, n, sum.Transferred, sum.Bytes, 100*share, sum.Resumed)
	if doc.Outcome != "committed" || sum.Resumed == 0 || share > 0.55 {
		t.Fatalf("the re-run: %+v; want it committed having transferred at most 55 %% of the bytes", doc)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("the resumed restore's database differs from the backup")
	}
}

// TestRestore_RemoteDeltaTransfersOnlyWhatChanged restores backup 1 from
// the S3 server, then backup 2 of the same database with one new table:
// the second restore hard-links the tables the database has and
// transfers at most 15 % of the backup's bytes; --no-delta links
// none from the database. A delta restore rolled back leaves the
// database as it was.
func TestRestore_RemoteDeltaTransfersOnlyWhatChanged(t *testing.T) {
	s := newServer(t)
	root := t.TempDir()
	src, db := filepath.Join(root, "src"), filepath.Join(root, "node", "db")
	must(t, os.MkdirAll(filepath.Dir(db), 0o755))
	tables(t, src, 0, 2000, 4)
	must(t, backupTo(src, filepath.Join(root, "b1")))
	tables(t, src, 2000, 150, 1)
	want := testutil.ReadDB(t, vfs.Default, src)
	must(t, backupTo(src, filepath.Join(root, "b2")))
	s.upload(t, filepath.Join(root, "b1"), "b1")
	s.upload(t, filepath.Join(root, "b2"), "b2")

	restore := func(from string, noDelta bool, faults string) (kvrflow.Summary, error) {
		res, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: db, Source: s.url(from), NoDelta: noDelta, FaultSpec: faults})
		if err != nil {
			return kvrflow.Summary{}, err
		}
		return res.Summary, nil
	}
	if _, err := restore("b1", false, ""); err != nil {
		t.Fatal(err)
	}
	sum, err := restore("b2", false, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delta from S3: %d of %d bytes transferred (%.1f %%), %d linked from the database", sum.Transferred, sum.Bytes, 100*float64(sum.Transferred)/float64(sum.Bytes), sum.Delta)
	if float64(sum.Transferred) > 0.15*float64(sum.Bytes) || sum.Transferred+sum.Delta != sum.Bytes {
		t.Fatalf("delta: %+v, want at most 15 %% of the bytes transferred, the rest linked", sum)
	}
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Fatal("the delta restore's database differs from backup 2")
	}
	// Rolled back after the tables were linked: the database is as it
	// was. Its staging is kept for a resume, which the next restore of
	// b1 makes: with --no-delta nothing is linked from the database.
	before := testutil.Snapshot(t, vfs.Default, db)
	if _, err := restore("b1", false, "restore.verify.end:eio"); !kvrflow.IsRolledBack(err) {
		t.Fatalf("a delta restore failing after verify: %v, want rolled back", err)
	}
	assertUnchanged(t, before, testutil.Snapshot(t, vfs.Default, db))
	if sum, err = restore("b1", true, ""); err != nil || sum.Delta != 0 || sum.Transferred+sum.Resumed != sum.Bytes {
		t.Fatalf("--no-delta: %+v, %v; want nothing linked from the database", sum, err)
	}
}

// tables adds keys [from, from+n) with 4 KiB random values to the Pebble
// database dir, flushed into k tables, automatic compactions off.
func tables(t *testing.T, dir string, from, n, k int) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{DisableAutomaticCompactions: true, Logger: quiet{}})
	must(t, err)
	rng := rand.New(rand.NewPCG(uint64(from), 1))
	val := make([]byte, 4096)
	for i := range n {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		must(t, db.Set(fmt.Appendf(nil, "key-%08d", from+i), val, pebble.NoSync))
		if (i+1)%(n/k) == 0 {
			must(t, db.Flush())
		}
	}
	must(t, db.Close())
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func backupTo(src, dir string) error {
	_, err := kvrflow.Backup(context.Background(), src, dir, nil)
	return err
}

// TestCLI_RemoteKilledMidObjectResumes restores a backup holding one
// 256 MiB object, killed once its copy's progress was journaled (every
// 64 MiB, after an fdatasync): the re-run continues the object from the
// offset journaled, with a ranged GET, and transfers at most 55 %.
func TestCLI_RemoteKilledMidObjectResumes(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, nil, 200)
	must(t, sampledb.AddFile(f.backup, "000999.blob", 256<<20, 5))
	s.upload(t, f.backup, "one")
	args := []string{"restore", "--from", s.url("one"), "--db", f.db}
	// Note 3: the third of the big object's progress notes, or the second
	// if the database's small files were journaled on their own first.
	if r := run(t, []string{fault.EnvVar + "=write.batch-noted:crash@3"}, args...); r.code != -1 {
		t.Fatalf("want the restore killed by SIGKILL after note 3: %s", r)
	}
	r := run(t, nil, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("the re-run: %s", r)
	}
	var doc summaryDoc
	must(t, json.Unmarshal([]byte(r.stdout), &doc))
	sum := doc.Summary
	share := float64(sum.Transferred) / float64(sum.Bytes)
	t.Logf("remote re-run after a kill in the middle of a 256 MiB object: %d of %d bytes transferred (%.1f %%), %d resumed", sum.Transferred, sum.Bytes, 100*share, sum.Resumed)
	if doc.Outcome != "committed" || share > 0.55 {
		t.Fatalf("the re-run: %+v; want it committed having transferred at most 55 %% of the bytes", doc)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("the resumed restore's database differs from the backup")
	}
	sameFile(t, filepath.Join(f.backup, "000999.blob"), filepath.Join(f.db, "000999.blob")) // resumed mid-object: byte for byte
}
