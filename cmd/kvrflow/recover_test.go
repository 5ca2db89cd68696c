package main

import (
	"context"
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

// TestRecover_DecisionResolvesAPreparedClusterRun: a cluster node's run
// left prepared stays prepared under a plain recover (exit 5, old
// database); --decision abort rolls it back, --decision commit (on
// another prepared run) finishes it; a bad --decision is a usage error.
func TestRecover_DecisionResolvesAPreparedClusterRun(t *testing.T) {
	for _, tc := range []struct{ decision, want string }{{"abort", "old"}, {"commit", "new"}} {
		t.Run(tc.decision, func(t *testing.T) {
			f := newFixture(t, 100, 10)
			p, err := kvrflow.Prepare(context.Background(), kvrflow.Options{DB: f.db, Source: f.backup, Prepare: "r/1"})
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
			mustRun(t, exitInFlight, nil, "recover", "--db", f.db)
			if st := mustRun(t, exitOK, nil, "status", "--db", f.db); !strings.Contains(st.stdout, "part of cluster restore r/1") {
				t.Errorf("status of a prepared cluster run:\n%s", st.stdout)
			}
			if got := f.which(t); got != "old" {
				t.Fatalf("prepared run after a plain recover: database %s, want old", got)
			}
			mustRun(t, exitUsage, nil, "recover", "--db", f.db, "--decision", "maybe")
			mustRun(t, exitOK, nil, "recover", "--db", f.db, "--decision", tc.decision)
			if got := f.which(t); got != tc.want {
				t.Fatalf("after --decision %s: database %s, want %s", tc.decision, got, tc.want)
			}
		})
	}
}
