package remoterestore

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_FromS3KvrflowBackup restores a kvrflow backup from the
// server in copy mode (auto resolves to it), reporting its progress in
// bytes.
func TestRestore_FromS3KvrflowBackup(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, s, 300)
	var last, total int64
	var units []string
	progress := func(done, tot int64, unit string) {
		last, total = done, tot
		if len(units) == 0 || units[len(units)-1] != unit {
			units = append(units, unit)
		}
	}
	res, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: s.url("pebble"), Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Outcome != steps.OutcomeCommitted || res.Summary.Mode != string(steps.ModeCopy) {
		t.Fatalf("run %+v summary %+v", res.Run, res.Summary)
	}
	// Progress in bytes, up to the backup's total.
	if last != total || total != res.Summary.Bytes || len(units) != 1 || units[0] != steps.ProgressBytes {
		t.Errorf("progress ended at %d of %d %v; the backup holds %d bytes", last, total, units, res.Summary.Bytes)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("restored database differs from the backup")
	}
}

// TestRestore_FromS3EveryKind restores each kind of source from the
// server: a RocksDB BackupEngine directory and a plain checkpoint (whose
// crc32c, recorded nowhere, is measured as the bytes arrive and
// journaled).
func TestRestore_FromS3EveryKind(t *testing.T) {
	s := newServer(t)
	f := newRocksFixture(t, s)
	for _, prefix := range []string{"rocks", "checkpoint"} {
		t.Run(prefix, func(t *testing.T) {
			must(t, os.RemoveAll(f.db))
			f.old = makeRocksDB(t, f.db, 1, 150)
			res, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: s.url(prefix)})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.scan(t); got != f.new {
				t.Fatalf("restored database differs from the backup")
			}
			if res.Run.Source != s.url(prefix) {
				t.Errorf("journaled source %q, want %q", res.Run.Source, s.url(prefix))
			}
			want := map[string]string{"rocks": steps.KindRocksdb, "checkpoint": steps.KindCheckpoint}[prefix]
			if k := journalDetail(t, f.db, "checked"); !strings.Contains(k, `"kind":"`+want+`"`) {
				t.Errorf("precheck journaled %s, want kind %s", k, want)
			}
			w := journalDetail(t, f.db, "written")
			if !strings.Contains(w, `"etag":"`) || !strings.Contains(w, `"crc32c":`) {
				t.Errorf("write journaled no ETags or checksums: %s", w)
			}
		})
	}
}

// TestRestore_FromFileURL restores a kvrflow backup through file://.
func TestRestore_FromFileURL(t *testing.T) {
	f := newPebbleFixture(t, nil, 200)
	if _, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: "file://" + f.backup}); err != nil {
		t.Fatal(err)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("restored database differs from the backup")
	}
}
