package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

func TestJournal_ListAndShowAfterARestore(t *testing.T) {
	f := newFixture(t, 100, 100)
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	jpath := filepath.Join(f.db+".kvrflow", steps.JournalName)

	r := mustRun(t, exitOK, nil, "journal", "list", "--db", f.db)
	if !strings.Contains(r.stdout, "RUN") || !strings.Contains(r.stdout, "committed") || !strings.Contains(r.stdout, f.backup) {
		t.Errorf("journal list:\n%s", r.stdout)
	}
	var list struct {
		Journal   string        `json:"journal"`
		JournalID string        `json:"journal_id"`
		Runs      []journal.Run `json:"runs"`
		ExitCode  int           `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "list", "--journal", jpath, "--json"), &list)
	if list.Journal != jpath || len(list.JournalID) != 16 || len(list.Runs) != 1 || list.Runs[0].Outcome != steps.OutcomeCommitted {
		t.Errorf("journal list --json = %+v", list)
	}

	// RUN may come before or after the flags.
	r = mustRun(t, exitOK, nil, "journal", "show", "1", "--db", f.db)
	if r2 := mustRun(t, exitOK, nil, "journal", "show", "--db", f.db, "1"); r2.stdout != r.stdout {
		t.Errorf("journal show output depends on where RUN is")
	}
	for _, want := range []string{"run 1: restore of " + f.backup, "new -start-> precheck", "commit -note-> commit",
		"commit -committed-> finish", "finish -finished-> done", `"plan":"exchange"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("journal show lacks %q:\n%s", want, r.stdout)
		}
	}
	var show struct {
		Journal  string          `json:"journal"`
		Run      journal.Run     `json:"run"`
		Events   []journal.Event `json:"events"`
		ExitCode int             `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "show", "1", "--db", f.db, "--json"), &show)
	if show.Run.ID != 1 || uint64(len(show.Events)) != show.Run.Events || show.Events[0].From != steps.StateNew {
		t.Errorf("journal show --json: run %+v with %d events", show.Run, len(show.Events))
	}
}

func TestJournal_BadRequestsExit2(t *testing.T) {
	f := newFixture(t, 100, 10)
	mustRun(t, exitUsage, nil, "journal", "list", "--db", f.db) // no journal yet
	mustRun(t, exitUsage, nil, "journal", "list")               // neither --db nor --journal
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	for _, args := range [][]string{
		{"journal", "show", "--db", f.db},
		{"journal", "show", "x", "--db", f.db},
		{"journal", "show", "0", "--db", f.db},
		{"journal", "show", "1", "2", "--db", f.db},
		{"journal", "show", "99", "--db", f.db},
	} {
		r := mustRun(t, exitUsage, nil, args...)
		if !strings.HasPrefix(r.stderr, "Error: ") {
			t.Errorf("kvrflow %q: stderr %q", args, r.stderr)
		}
	}
}
