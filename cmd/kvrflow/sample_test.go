package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/testutil"
)

var regenerateSample = flag.Bool("regenerate-sample", false, "rewrite testdata/sample/backup with kvrflow backup")

// The sample backup shipped for the README's first command: the database
// testutil.MakeDB makes with this seed and key count, backed up by
// kvrflow backup.
const (
	sampleDir  = "../../testdata/sample/backup"
	sampleSeed = 7
	sampleKeys = 300
)

// TestSample_RestoresTheShippedBackup restores testdata/sample/backup and
// checks it holds the database it was made from. With -regenerate-sample
// it first makes the backup anew (go test ./cmd/kvrflow -run Sample
// -regenerate-sample).
func TestSample_RestoresTheShippedBackup(t *testing.T) {
	want := testutil.MakeDB(t, vfs.NewMem(), "/sample", sampleSeed, sampleKeys)
	if *regenerateSample {
		src := filepath.Join(t.TempDir(), "sample")
		testutil.MakeDB(t, vfs.Default, src, sampleSeed, sampleKeys)
		if err := os.RemoveAll(sampleDir); err != nil {
			t.Fatal(err)
		}
		mustRun(t, exitOK, nil, "backup", "--db", src, "--to", sampleDir)
	}
	var total int64
	err := filepath.Walk(sampleDir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatalf("the sample backup is missing (make it with -regenerate-sample): %v", err)
	}
	if total > 200<<10 {
		t.Errorf("the sample backup is %d bytes; keep it under 200 KiB", total)
	}
	db := filepath.Join(t.TempDir(), "db")
	mustRun(t, exitOK, nil, "restore", "--from", sampleDir, "--db", db, "--mode", "copy")
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Errorf("the sample restored to %d keys, want the %d of MakeDB(seed %d)", len(got), len(want), sampleSeed)
	}
	checkJournal(t, db)
}
