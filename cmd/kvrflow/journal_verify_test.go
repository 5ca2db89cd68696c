package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// restored returns a fixture restored n times with kvrflow restore, and
// its journal's path.
func restored(tb testing.TB, n int) (*fixture, string) {
	tb.Helper()
	f := newFixture(tb, 50, 50)
	for range n {
		mustRun(tb, exitOK, nil, f.restoreArgs()...)
	}
	return f, filepath.Join(f.db+".kvrflow", steps.JournalName)
}

// verifyJSON is journal verify's --json document.
type verifyJSON struct {
	audit.VerifyReport
	FirstProblem *journal.Problem `json:"first_problem"`
	Error        string           `json:"error"`
	ExitCode     int              `json:"exit_code"`
}

// copyJournal copies the journal at src to a new temporary file.
func copyJournal(tb testing.TB, src string) string {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(tb.TempDir(), "journal.db")
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// editEvent rewrites run's event seq of the journal at path with fn, with
// bbolt directly.
func editEvent(tb testing.TB, path string, run, seq uint64, fn func([]byte) []byte) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	key := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events")).Bucket(key(run))
		return b.Put(key(seq), fn(append([]byte(nil), b.Get(key(seq))...)))
	}); err != nil {
		tb.Fatal(err)
	}
}

func TestJournalVerify_IntactJournalExits0(t *testing.T) {
	f, _ := restored(t, 2)
	r := mustRun(t, exitOK, nil, "journal", "verify", "--db", f.db)
	for _, want := range []string{": 2 runs, ", "in flight: none", "ok: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("journal verify lacks %q:\n%s", want, r.stdout)
		}
	}
	var doc verifyJSON
	decode(t, mustRun(t, exitOK, nil, "journal", "verify", "--db", f.db, "--json"), &doc)
	if doc.Runs != 2 || doc.Events < 14 || len(doc.Problems) != 0 || doc.FirstProblem != nil || doc.InFlight == nil || doc.ExitCode != 0 {
		t.Errorf("journal verify --json = %+v", doc)
	}
}

func TestJournalVerify_TamperedEventExits4NamingIt(t *testing.T) {
	_, jpath := restored(t, 2)
	path := copyJournal(t, jpath)
	editEvent(t, path, 2, 3, func(v []byte) []byte { return []byte(strings.Replace(string(v), `"cleaned"`, `"cleanes"`, 1)) })
	r := mustRun(t, exitJournal, nil, "journal", "verify", "--journal", path)
	if !strings.Contains(r.stdout, "1 problem, the first listed first:\n  run 2 event 3: ") || !strings.Contains(r.stderr, "Error: journal verification failed: ") ||
		!strings.Contains(r.stderr, "1 problem, the first: run 2 event 3") || strings.Count(r.stdout, "run 2 event 3:") != 1 {
		t.Errorf("journal verify of a tampered journal:\n%s", r)
	}
	var doc verifyJSON
	decode(t, mustRun(t, exitJournal, nil, "journal", "verify", "--journal", path, "--json"), &doc)
	if doc.FirstProblem == nil || doc.FirstProblem.Run != 2 || doc.FirstProblem.Seq != 3 || len(doc.Problems) != 1 || doc.ExitCode != exitJournal || doc.Error == "" {
		t.Errorf("journal verify --json = %+v", doc)
	}
}

func TestJournalVerify_UnverifiableJournalsExit4AndBadRequests2(t *testing.T) {
	old := copyJournal(t, "../../testdata/journal/v1.db")
	if r := mustRun(t, exitJournal, nil, "journal", "verify", "--journal", old); !strings.Contains(r.stderr, "older kvrflow") {
		t.Errorf("journal verify of a schema 1 journal:\n%s", r)
	}
	garbage := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a journal ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, exitJournal, nil, "journal", "verify", "--journal", garbage)
	missing := filepath.Join(t.TempDir(), "none.db")
	mustRun(t, exitUsage, nil, "journal", "verify", "--journal", missing)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("journal verify created %s", missing)
	}
	mustRun(t, exitUsage, nil, "journal", "verify")
	mustRun(t, exitUsage, nil, "journal", "verify", "--journal", old, "extra")
}
