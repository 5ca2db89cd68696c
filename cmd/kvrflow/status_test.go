package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/steps"
)

// statusJSON is status's --json document.
type statusJSON struct {
	kvrflow.StatusReport
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// status runs kvrflow status --json on db and returns its document.
func status(tb testing.TB, db string) statusJSON {
	tb.Helper()
	var doc statusJSON
	decode(tb, mustRun(tb, exitOK, nil, "status", "--db", db, "--json"), &doc)
	return doc
}

func TestStatus_DatabaseNeverRestored(t *testing.T) {
	f := newFixture(t, 100, 10)
	doc := status(t, f.db)
	if !doc.DBExists || doc.DBFiles == 0 || doc.DBBytes == 0 || doc.DB != f.db {
		t.Errorf("status of the database = %+v", doc)
	}
	if doc.JournalNote == "" || len(doc.Runs) != 0 || len(doc.InFlight) != 0 || len(doc.Leftovers) != 0 || len(doc.Quarantine) != 0 {
		t.Errorf("status of a database kvrflow never restored = %+v", doc)
	}
	if doc.Journal != filepath.Join(f.db+".kvrflow", steps.JournalName) {
		t.Errorf("journal = %s", doc.Journal)
	}
	missing := status(t, filepath.Join(f.root, "node", "other"))
	if missing.DBExists || missing.ExitCode != 0 {
		t.Errorf("status of a missing database = %+v", missing)
	}
	r := mustRun(t, exitOK, nil, "status", "--db", f.db)
	for _, want := range []string{"database:   " + f.db, "in flight:  none", "not restored"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestStatus_AfterOneRestore(t *testing.T) {
	f := newFixture(t, 100, 200)
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	doc := status(t, f.db)
	if len(doc.Runs) != 1 || len(doc.InFlight) != 0 || len(doc.Leftovers) != 0 || len(doc.Quarantine) != 0 || doc.JournalNote != "" {
		t.Fatalf("status after a restore = %+v", doc)
	}
	run := doc.Runs[0]
	if run.ID != 1 || run.Outcome != steps.OutcomeCommitted || run.State != steps.StateDone || run.Source != f.backup || run.End.Before(run.Start) {
		t.Errorf("run = %+v", run)
	}
	r := mustRun(t, exitOK, nil, "status", "--db", f.db)
	for _, want := range []string{"last runs:", "committed", f.backup, "in flight:  none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestStatus_SaysWhatAnOperatorNeeds: what DIR holds, whether journal
// verify passes, the verification of the last committed restore (never a
// rolled-back run's), and quarantine entries with their size and age.
func TestStatus_SaysWhatAnOperatorNeeds(t *testing.T) {
	f := newFixture(t, 20, 20)
	must(t, os.MkdirAll(f.db+".tmp", 0o755))
	must(t, os.WriteFile(filepath.Join(f.db+".tmp", "x"), []byte("12345"), 0o644))
	mustRun(t, exitOK, nil, f.restoreArgs("--verify", "full")...)
	// A run that verified, then failed at its commit: its check is not
	// what DB holds.
	cli(t, []string{"KVRFLOW_FAULT=restore.commit.begin:eio"}, f.restoreArgs()...)
	st := status(t, f.db)
	if st.DBKind != "pebble" || !st.JournalVerified {
		t.Errorf("db_kind %q, journal_verified %v", st.DBKind, st.JournalVerified)
	}
	if !strings.HasPrefix(st.LastVerification, "run 1: ") || !strings.Contains(st.LastVerification, "CheckLevels") {
		t.Errorf("last verification %q, want run 1's (the last committed), with CheckLevels", st.LastVerification)
	}
	if len(st.Quarantine) != 1 || st.Quarantine[0].Bytes != 5 || st.Quarantine[0].Moved.IsZero() {
		t.Errorf("quarantine %+v, want db.tmp with its 5 bytes and when it moved", st.Quarantine)
	}
	r := mustRun(t, exitOK, nil, "status", "--db", f.db)
	for _, want := range []string{"(a pebble database, ", "journal verify: ok", "run1-db.tmp (5 B, moved "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
}
