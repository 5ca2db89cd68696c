package main

import (
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/audit"
)

func TestJournalReplay_PrintsTheTimelineWithRecoverysDecisions(t *testing.T) {
	f, _ := restored(t, 1)
	r := mustRun(t, exitOK, nil, "journal", "replay", "1", "--db", f.db)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "SEQ ") {
			header = i
		}
	}
	if header < 0 || !strings.Contains(lines[header], "IF IT HAD CRASHED HERE") || !strings.HasPrefix(lines[0], "run 1: restore of "+f.backup) {
		t.Fatalf("journal replay:\n%s", r.stdout)
	}
	rows := lines[header+1:]
	for _, want := range []struct{ transition, decision string }{
		{"begin -> new", "roll back"},
		{"new -start-> precheck", "roll back"},
		{"commit -note-> commit", "roll back"},
		{"commit -committed-> finish", "resume"},
		{"finish -finished-> done", "nothing"},
	} {
		found := false
		for _, row := range rows {
			if strings.Contains(row, " "+want.transition+" ") {
				found = true
				if !strings.HasSuffix(row, want.decision) {
					t.Errorf("row %q does not end with %q", row, want.decision)
				}
			}
		}
		if !found {
			t.Errorf("no row %q:\n%s", want.transition, r.stdout)
		}
	}

	var doc struct {
		audit.Timeline
		ExitCode int `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "replay", "--db", f.db, "1", "--json"), &doc)
	if doc.Run.ID != 1 || len(doc.Steps) != len(rows)-1 || doc.IfCrashedAtStart != "roll back" {
		t.Fatalf("journal replay --json: run %d, %d steps (text %d rows), at start %q", doc.Run.ID, len(doc.Steps), len(rows), doc.IfCrashedAtStart)
	}
	last := doc.Steps[len(doc.Steps)-1]
	if last.To != "done" || last.IfCrashed != "nothing" || last.Hash != doc.Run.FinalHash || doc.Steps[0].Duration <= 0 {
		t.Errorf("journal replay --json: last step %+v, run %+v", last, doc.Run)
	}
}

func TestJournalReplay_BadRunExits2(t *testing.T) {
	f, _ := restored(t, 1)
	for _, args := range [][]string{
		{"journal", "replay", "--db", f.db},
		{"journal", "replay", "0", "--db", f.db},
		{"journal", "replay", "1", "2", "--db", f.db},
		{"journal", "replay", "9", "--db", f.db},
	} {
		mustRun(t, exitUsage, nil, args...)
	}
}
