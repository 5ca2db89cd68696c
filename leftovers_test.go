package kvrflow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

type crashed struct{ point string }

// crashAt runs a restore that stops dead at point, as a kill there would:
// the crash unwinds the goroutine without any journal write.
func crashAt(t *testing.T, opts Options, point string) {
	t.Helper()
	spec := point + ":crash"
	if p, n, ok := strings.Cut(point, "@"); ok {
		spec = p + ":crash@" + n
	}
	fs, err := fault.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	opts.Faults = fs.SetCrash(func(p string) { panic(crashed{p}) })
	defer func() {
		if r := recover(); r == nil {
			t.Fatalf("restore did not reach %s", point)
		} else if _, ok := r.(crashed); !ok {
			panic(r)
		}
	}()
	_, _ = Restore(context.Background(), opts)
}

// TestRestore_StaleLeftoversAreRecoveredOrQuarantined is the scenario that
// breaks Kvrocks: a restore killed mid-way left its staging directory, and
// a stale, non-empty db.tmp lies beside the database. The next restore
// succeeds; kvrflow's leftover is removed on the journal's proof; the
// unknown db.tmp and an unknown staging directory are quarantined with
// their contents intact.
func TestRestore_StaleLeftoversAreRecoveredOrQuarantined(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	crashAt(t, f.opts(), "restore.verify.begin")
	staging1 := runDir(t, f.db, "staging", 1)
	tmp := f.db + ".tmp"
	must(t, os.MkdirAll(tmp, 0o755))
	must(t, os.WriteFile(filepath.Join(tmp, "000001.sst"), []byte("only copy of something"), 0o644))
	unknown := f.db + ".kvrflow/staging-77"
	must(t, os.MkdirAll(unknown, 0o755))
	must(t, os.WriteFile(filepath.Join(unknown, "x"), []byte("unknown"), 0o644))

	res, err := Restore(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recovered) != 1 || res.Recovered[0].Run.Outcome != steps.OutcomeRolledBack {
		t.Fatalf("recovered = %+v, want run 1 rolled back", res.Recovered)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("database is not the backup's")
	}
	if _, err := os.Stat(staging1); !os.IsNotExist(err) {
		t.Fatalf("staging of the killed run still there: %v", err)
	}
	q := f.db + ".kvrflow/quarantine"
	for path, want := range map[string]string{
		filepath.Join(q, "run2-db.tmp", "000001.sst"): "only copy of something",
		filepath.Join(q, "run2-staging-77", "x"):      "unknown",
	} {
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("quarantined %s = %q, %v; want %q", path, b, err, want)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s still beside the database: %v", tmp, err)
	}
	j, err := journal.Open(f.db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	r1, err := j.Run(1)
	must(t, err)
	if r1.Outcome != steps.OutcomeRolledBack {
		t.Errorf("run 1 outcome %q, want rolled_back", r1.Outcome)
	}
}

// TestRestore_EndedRunNameWithoutProofIsQuarantined: a directory bearing
// the name of an ended run of this journal (old-JID-1) that the journal
// has no record of (the run committed with an exchange, so it never had
// an old-JID-1) is not removed: it is quarantined with its contents.
func TestRestore_EndedRunNameWithoutProofIsQuarantined(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	if _, err := Restore(context.Background(), f.opts()); err != nil {
		t.Fatal(err)
	}
	left := f.db + ".kvrflow/old-" + journalID(t, f.db) + "-1"
	must(t, os.MkdirAll(left, 0o755))
	must(t, os.WriteFile(filepath.Join(left, "p"), []byte("precious"), 0o644))
	res, err := Restore(context.Background(), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("%s still in place: %v", left, err)
	}
	b, err := os.ReadFile(filepath.Join(f.db+".kvrflow/quarantine", "run2-"+filepath.Base(left), "p"))
	if err != nil || string(b) != "precious" {
		t.Fatalf("quarantined copy: %q, %v", b, err)
	}
	if res.Run.ID != 2 {
		t.Fatalf("run id %d", res.Run.ID)
	}
}

// journalID returns the id of db's default journal.
func journalID(t testing.TB, db string) string {
	t.Helper()
	j, err := journal.Open(db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	id := j.ID()
	if id == "" {
		t.Fatal("journal has no id")
	}
	return id
}

// runDir returns the path of run's directory of kind (staging or old) in
// db.kvrflow, named after the default journal's id, and fails the test if
// it does not exist.
func runDir(t testing.TB, db, kind string, run int) string {
	t.Helper()
	p := fmt.Sprintf("%s.kvrflow/%s-%s-%d", db, kind, journalID(t, db), run)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("run %d's %s directory: %v", run, kind, err)
	}
	return p
}

// TestRestore_SymlinkedParentIsOneDatabase: a database reached through a
// symbolic link in its parent path is the same database to the journal: a
// run interrupted under one spelling is recovered under the other.
func TestRestore_SymlinkedParentIsOneDatabase(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	crashAt(t, f.opts(), "restore.verify.begin")
	link := filepath.Join(f.root, "alias")
	must(t, os.Symlink(filepath.Dir(f.db), link))
	viaLink := filepath.Join(link, filepath.Base(f.db))
	st, err := Status(Options{DB: viaLink})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.InFlight) != 1 || len(st.Leftovers) != 0 {
		t.Fatalf("status through the link: in flight %v, leftovers %v; want the run in flight and no leftover", st.InFlight, st.Leftovers)
	}
	rec, err := Recover(context.Background(), Options{DB: viaLink})
	if err != nil || len(rec) != 1 || rec[0].Run.Outcome != steps.OutcomeRolledBack {
		t.Fatalf("recover through the link: %+v, %v", rec, err)
	}
	if _, err := Restore(context.Background(), Options{DB: viaLink, Source: f.backup}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("database is not the backup's")
	}
}

// TestRestore_BadInputCreatesNothing: paths that overlap, or a missing
// source, are refused before DB.kvrflow is created.
func TestRestore_BadInputCreatesNothing(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	for _, o := range []Options{
		{DB: filepath.Join(f.backup, "sub"), Source: f.backup},
		{DB: filepath.Join(f.root, "node", "fresh"), Source: filepath.Join(f.root, "typo")},
	} {
		if _, err := Restore(context.Background(), o); err == nil {
			t.Fatalf("restore %+v succeeded", o)
		}
		if _, err := os.Stat(o.DB + ".kvrflow"); !os.IsNotExist(err) {
			t.Errorf("%s.kvrflow created for bad input: %v", o.DB, err)
		}
	}
}
