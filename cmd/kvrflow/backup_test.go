package main

import (
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/testutil"
)

func TestBackup_ThenRestoreHoldsTheSameKeys(t *testing.T) {
	root := t.TempDir()
	src, backup, db := filepath.Join(root, "src"), filepath.Join(root, "backup"), filepath.Join(root, "db")
	want := testutil.MakeDB(t, vfs.Default, src, 3, 250)
	var doc struct {
		Dir      string `json:"dir"`
		Files    int    `json:"files"`
		Bytes    int64  `json:"bytes"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "backup", "--db", src, "--to", backup, "--json"), &doc)
	if doc.Dir != backup || doc.Files == 0 || doc.Bytes == 0 {
		t.Errorf("backup --json = %+v", doc)
	}
	mustRun(t, exitOK, nil, "restore", "--from", backup, "--db", db)
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Fatalf("restored database has %d keys, the source had %d", len(got), len(want))
	}
	checkJournal(t, db)
}

func TestBackup_RefusesAnExistingTargetOrMissingDatabase(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	testutil.MakeDB(t, vfs.Default, src, 3, 10)
	r := mustRun(t, exitUsage, nil, "backup", "--db", src, "--to", root, "--json")
	var doc struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, r, &doc)
	if doc.Error == "" || doc.ExitCode != exitUsage {
		t.Errorf("backup --json onto an existing directory = %+v", doc)
	}
	mustRun(t, exitUsage, nil, "backup", "--db", filepath.Join(root, "nope"), "--to", filepath.Join(root, "b"))
}
