package remoterestore

import (
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/testutil"
)

// TestCLI_BackupToThenRestoreFrom is the round trip through the binary:
// kvrflow backup --to a prefix of the S3 server, then kvrflow restore
// --from it into another node's database, which then holds exactly the
// backed-up keys; a second backup to the same prefix is refused (exit 2)
// and the restore from it still gives the same keys.
func TestCLI_BackupToThenRestoreFrom(t *testing.T) {
	s := newServer(t)
	root := t.TempDir()
	src := filepath.Join(root, "primary", "db")
	want := testutil.MakeDB(t, vfs.Default, src, 3, 300)
	if r := run(t, nil, "backup", "--db", src, "--to", s.url("nightly/1")); r.code != 0 {
		t.Fatalf("backup --to: %s", r)
	}
	if r := run(t, nil, "backup", "--db", src, "--to", s.url("nightly/1")); r.code != 2 {
		t.Fatalf("a second backup to the same prefix: %s, want exit 2", r)
	}
	f := newPebbleFixture(t, nil, 100) // an old database to replace
	if r := run(t, nil, "restore", "--from", s.url("nightly/1"), "--db", f.db); r.code != 0 {
		t.Fatalf("restore --from: %s", r)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, want) {
		t.Fatal("the database restored from the uploaded backup differs from the one backed up")
	}
}
