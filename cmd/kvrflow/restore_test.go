package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// restoreJSON is restore's --json document.
type restoreJSON struct {
	DB        string              `json:"db"`
	Source    string              `json:"source"`
	Outcome   string              `json:"outcome"`
	Run       journal.Run         `json:"run"`
	Recovered []kvrflow.Recovered `json:"recovered"`
	Syncs     kvrflow.Syncs       `json:"syncs"`
	Summary   kvrflow.Summary     `json:"summary"`
	Error     string              `json:"error"`
	ExitCode  int                 `json:"exit_code"`
}

func TestRestore_JSONReportsCommitted(t *testing.T) {
	f := newFixture(t, 200, 300)
	r := mustRun(t, exitOK, nil, f.restoreArgs("--json", "--log-format", "json")...)
	var doc restoreJSON
	decode(t, r, &doc)
	if doc.Outcome != steps.OutcomeCommitted || doc.Run.Outcome != steps.OutcomeCommitted || doc.Run.State != steps.StateDone ||
		doc.ExitCode != 0 || doc.Error != "" || doc.Run.ID != 1 || doc.DB != f.db ||
		doc.Syncs.JournalCommits != int64(doc.Run.Events)+1 || doc.Syncs.Dirs == 0 {
		t.Errorf("restore --json = %+v", doc)
	}
	if got := f.which(t); got != "new" {
		t.Errorf("database holds the %s contents, want the backup's", got)
	}
	// Logs go to stderr, one JSON object a line; no progress bar off a
	// terminal.
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not JSON: %q", line)
		}
	}
	if !strings.Contains(r.stderr, "restore started") || strings.Contains(r.stderr, "writing") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestRestore_TextReportsTheRun(t *testing.T) {
	f := newFixture(t, 0, 50)
	r := mustRun(t, exitOK, nil, f.restoreArgs("--mode", "copy")...)
	// The success line names what was done: created or replaced, the run,
	// the mode chosen, the engine, the level, files, bytes in binary units.
	for _, want := range []string{"restored ", ": created it; run 1, copy mode, pebble, verify checksum, ", " files, ", "KiB"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, exitOK, nil, f.restoreArgs()...)
	if !strings.Contains(r.stdout, ": replaced the pebble database it held; run 2, link mode, ") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if got := f.which(t); got != "new" {
		t.Errorf("database holds the %s contents, want the backup's", got)
	}
}

func TestRestore_UsageErrorsExit2AndChangeNothing(t *testing.T) {
	f := newFixture(t, 100, 100)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"unknown flag", nil, f.restoreArgs("--bogus")},
		{"bad mode", nil, f.restoreArgs("--mode", "teleport")},
		{"bad engine", nil, f.restoreArgs("--engine", "leveldb")},
		{"bad backup id", nil, f.restoreArgs("--backup-id", "-1")},
		{"bad fault flag", nil, f.restoreArgs("--fault", "no.such.point:crash")},
		{"bad fault action", nil, f.restoreArgs("--fault", "fs.write:explode")},
		{"bad fault env", []string{fault.EnvVar + "=fs.write"}, f.restoreArgs()},
		{"missing --from", nil, []string{"restore", "--db", f.db}},
		{"stray argument", nil, f.restoreArgs("now")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRun(t, exitUsage, tc.env, append(tc.args, "--json")...)
			var doc struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exit_code"`
			}
			decode(t, r, &doc)
			if doc.ExitCode != exitUsage || doc.Error == "" || !strings.Contains(r.stderr, "Error: "+doc.Error) {
				t.Errorf("--json = %+v, stderr %q", doc, r.stderr)
			}
			if got := f.which(t); got != "old" {
				t.Errorf("database holds the %s contents", got)
			}
			if _, err := os.Stat(f.db + ".kvrflow"); !os.IsNotExist(err) {
				t.Errorf("a usage error created kvrflow's directory (stat: %v)", err)
			}
		})
	}
}

func TestRestore_MissingOrWrongSourceExits2AndLeavesDBUnchanged(t *testing.T) {
	f := newFixture(t, 100, 10)
	missing := filepath.Join(f.root, "no-such-backup")
	r := mustRun(t, exitUsage, nil, "restore", "--from", missing, "--db", f.db)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, missing) {
		t.Errorf("stderr does not name the source:\n%s", r.stderr)
	}
	if errLines := strings.Count(r.stderr, "Error: "); errLines != 1 {
		t.Errorf("%d Error: lines on stderr:\n%s", errLines, r.stderr)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("database holds the %s contents", got)
	}
	r = mustRun(t, exitUsage, nil, f.restoreArgs("--engine", "rocksdb")...)
	if !strings.Contains(r.stderr, "--engine rocksdb") {
		t.Errorf("stderr does not say the engine is wrong:\n%s", r.stderr)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("database holds the %s contents", got)
	}
}

func TestRestore_InjectedIOErrorRollsBackWithExit1(t *testing.T) {
	f := newFixture(t, 100, 100)
	for _, point := range []string{"restore.write.begin", "fs.write@2", "fs.before-exchange"} {
		r := mustRun(t, exitRolledBack, nil, f.restoreArgs("--mode", "copy", "--fault", spec(point, "eio"), "--json")...)
		var doc restoreJSON
		decode(t, r, &doc)
		if doc.Outcome != steps.OutcomeRolledBack || doc.ExitCode != exitRolledBack || !strings.Contains(doc.Error, "injected fault") {
			t.Errorf("%s: restore --json = %+v", point, doc)
		}
		if got := f.which(t); got != "old" {
			t.Errorf("%s: database holds the %s contents after a rollback", point, got)
		}
	}
}

func TestRestore_DatabaseOpenElsewhereExits3(t *testing.T) {
	f := newFixture(t, 100, 100)
	db, err := pebble.Open(f.db, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, exitInUse, nil, f.restoreArgs()...)
	if !strings.Contains(r.stderr, "in use") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("database holds the %s contents", got)
	}
}

func TestRestore_CorruptJournalExits4(t *testing.T) {
	f := newFixture(t, 100, 100)
	jpath := filepath.Join(f.db+".kvrflow", steps.JournalName)
	if err := os.MkdirAll(filepath.Dir(jpath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jpath, []byte(strings.Repeat("not a journal ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, exitJournal, nil, f.restoreArgs()...)
	mustRun(t, exitJournal, nil, "status", "--db", f.db)
	mustRun(t, exitJournal, nil, "recover", "--db", f.db)
	if got := f.which(t); got != "old" {
		t.Errorf("database holds the %s contents", got)
	}
	if err := os.Remove(jpath); err != nil { // for the fixture's journal check
		t.Fatal(err)
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(f) }

func TestRestore_LeftInFlightExits5AndRecoverFinishes(t *testing.T) {
	for _, tc := range []struct {
		name, fault, want string
	}{
		{"error after the commit point", "restore.finish.begin:eio", "new"},
		{"rollback fails", "restore.write.begin:eio,restore.rollback.begin:eio", "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 100, 100)
			r := mustRun(t, exitInFlight, nil, f.restoreArgs("--fault", tc.fault, "--json")...)
			var doc restoreJSON
			decode(t, r, &doc)
			if doc.Outcome != "" || !doc.Run.InFlight() || doc.ExitCode != exitInFlight ||
				!strings.Contains(doc.Error, "left in flight") || !strings.Contains(doc.Error, "kvrflow recover --db "+f.db) {
				t.Errorf("restore --json = %+v", doc)
			}
			if st := status(t, f.db); len(st.InFlight) != 1 {
				t.Errorf("status shows %d runs in flight, want 1", len(st.InFlight))
			}
			var rec recoverJSON
			decode(t, mustRun(t, exitOK, nil, "recover", "--db", f.db, "--json"), &rec)
			if len(rec.Recovered) != 1 || rec.Recovered[0].Run.ID != doc.Run.ID {
				t.Errorf("recover --json = %+v", rec)
			}
			if got := f.which(t); got != tc.want {
				t.Errorf("after recovery the database holds the %s contents, want %s", got, tc.want)
			}
		})
	}
}
