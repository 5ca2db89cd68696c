package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow"
)

// recoverJSON is recover's --json document.
type recoverJSON struct {
	DB        string              `json:"db"`
	Recovered []kvrflow.Recovered `json:"recovered"`
	Error     string              `json:"error"`
	ExitCode  int                 `json:"exit_code"`
}

func TestRecover_NothingToDoExits0(t *testing.T) {
	f := newFixture(t, 100, 10)
	// Never restored: no kvrflow directory at all.
	r := mustRun(t, exitOK, nil, "recover", "--db", f.db)
	if !strings.Contains(r.stdout, "nothing to recover") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	// Restored, nothing in flight.
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	var doc recoverJSON
	decode(t, mustRun(t, exitOK, nil, "recover", "--db", f.db, "--json"), &doc)
	if doc.Recovered == nil || len(doc.Recovered) != 0 || doc.ExitCode != 0 {
		t.Errorf("recover --json = %+v", doc)
	}
	if got := f.which(t); got != "new" {
		t.Errorf("database holds the %s contents", got)
	}
}

func TestRecover_MissingParentExits2(t *testing.T) {
	mustRun(t, exitUsage, nil, "recover", "--db", filepath.Join(t.TempDir(), "no", "db"))
}
