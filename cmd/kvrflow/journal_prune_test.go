package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/journal"
)

// pruneJSON is journal prune's --json document.
type pruneJSON struct {
	Journal   string   `json:"journal"`
	JournalID string   `json:"journal_id"`
	Removed   []uint64 `json:"removed"`
	Remaining int      `json:"remaining"`
	Anchor    string   `json:"anchor"`
	ExitCode  int      `json:"exit_code"`
}

func TestJournalPrune_KeepRemovesOldRunsAndVerifyStillPasses(t *testing.T) {
	f, _ := restored(t, 3)
	r := mustRun(t, exitOK, nil, "journal", "prune", "--keep", "1", "--db", f.db)
	if !strings.Contains(r.stdout, "removed 2 runs from ") || !strings.Contains(r.stdout, ": 1, 2\n") {
		t.Errorf("journal prune --keep 1:\n%s", r.stdout)
	}
	var v verifyJSON
	decode(t, mustRun(t, exitOK, nil, "journal", "verify", "--db", f.db, "--json"), &v)
	if v.Runs != 1 || len(v.Problems) != 0 {
		t.Errorf("journal verify after prune = %+v", v)
	}
	var list struct {
		Journal   string        `json:"journal"`
		JournalID string        `json:"journal_id"`
		Runs      []journal.Run `json:"runs"`
		ExitCode  int           `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "list", "--db", f.db, "--json"), &list)
	if len(list.Runs) != 1 || list.Runs[0].ID != 3 {
		t.Fatalf("runs after prune: %+v", list.Runs)
	}
	var doc pruneJSON
	decode(t, mustRun(t, exitOK, nil, "journal", "prune", "--keep", "1", "--db", f.db, "--json"), &doc)
	if len(doc.Removed) != 0 || doc.Remaining != 1 || doc.Anchor != list.Runs[0].PrevRun || doc.Anchor == journal.Genesis {
		t.Errorf("second journal prune --keep 1 --json = %+v", doc)
	}
	// The next restore chains on.
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	mustRun(t, exitOK, nil, "journal", "verify", "--db", f.db)
}

func TestJournalPrune_InFlightRunIsNeverPruned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ended := func() {
		r, err := j.Begin(journal.Run{Kind: "restore", Target: "/db", State: "new"})
		if err == nil {
			err = j.Append(r.ID, "new", "abort", "rollback", nil, "", "")
		}
		if err == nil {
			err = j.Append(r.ID, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ended()
	live, err := j.Begin(journal.Run{Kind: "restore", Target: "/db", State: "new"})
	if err == nil {
		err = j.Append(live.ID, "new", "start", "precheck", nil, "", "")
	}
	if err != nil {
		t.Fatal(err)
	}
	ended()
	ended()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"--older-than", "1ns"}, {"--keep", "1"}} {
		var doc pruneJSON
		decode(t, mustRun(t, exitOK, nil, append([]string{"journal", "prune", "--journal", path, "--json"}, args...)...), &doc)
		if slices.Contains(doc.Removed, live.ID) || slices.Contains(doc.Removed, 3) {
			t.Errorf("journal prune %v removed %v: past run %d in flight", args, doc.Removed, live.ID)
		}
	}
	var v verifyJSON
	decode(t, mustRun(t, exitOK, nil, "journal", "verify", "--journal", path, "--json"), &v)
	if v.Runs != 3 || !slices.Equal(v.InFlight, []uint64{live.ID}) || len(v.Problems) != 0 {
		t.Errorf("journal verify after prune = %+v", v)
	}
}

func TestJournalPrune_BadRequestsExit2AndCreateNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "journal.db")
	for _, args := range [][]string{
		{"--journal", missing},
		{"--journal", missing, "--keep", "1", "--older-than", "1h"},
		{"--journal", missing, "--keep", "-1"},
		{"--journal", missing, "--older-than", "soon"},
		{"--journal", missing, "--keep", "1"},
		{"--keep", "1"},
	} {
		mustRun(t, exitUsage, nil, append([]string{"journal", "prune"}, args...)...)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("journal prune created %s: %v", missing, err)
	}
}
