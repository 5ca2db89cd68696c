package kvrflow

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestBackupTo_AnotherWritersObjectDuringTheUploadIsNoBackup: another
// writer (a second backup --to of another database to the same prefix)
// puts an object the manifest will not list while this upload runs. The
// upload must not put its manifest over a prefix a restore refuses (an
// object not listed in the manifest): it fails, no manifest.
func TestBackupTo_AnotherWritersObjectDuringTheUploadIsNoBackup(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	s := openStore(t, f.url)
	put := false
	afterUpload = func(string) {
		if put {
			return
		}
		put = true
		data := []byte("another database's table")
		if _, err := s.PutIfAbsent(context.Background(), "999999.sst", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Error(err)
		}
	}
	defer func() { afterUpload = nil }()
	_, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{FilesAtOnce: 1})
	if err == nil {
		t.Fatalf("the backup succeeded with an object it does not list under its prefix: %v", listing(t, f.url))
	}
	if !errors.Is(err, ErrObjectInTheWay) {
		t.Errorf("error %v, want ErrObjectInTheWay", err)
	}
	if _, err := s.Stat(context.Background(), manifest.Name); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("a manifest was put: %v", err)
	}
}

// TestBackupTo_FileURLInsideTheDatabaseIsRefused: backup --to file://
// of a directory inside the database, or inside its kvrflow directory, is
// refused as --to DIR is (a restore of the database would take the backup
// with the old one; Clean quarantines what it does not know in
// DB.kvrflow), nothing written.
func TestBackupTo_FileURLInsideTheDatabaseIsRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	testutil.MakeDB(t, vfs.Default, db, 4, 500)
	for _, dir := range []string{filepath.Join(db, "inner"), filepath.Join(db+".kvrflow", "inner")} {
		must(t, os.MkdirAll(dir, 0o755))
		_, err := BackupTo(context.Background(), db, "file://"+dir, RemoteBackupOptions{})
		if !errors.Is(err, steps.ErrBadPath) {
			t.Errorf("backup to file://%s: %v, want ErrBadPath", dir, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s holds %d entries after a refused backup", dir, len(ents))
		}
	}
}
