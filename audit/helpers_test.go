package audit_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fixture is an old database and a backup of another one, on fs, and the
// journal (on the real disk) restores of it write.
type fixture struct {
	fs      vfs.FS
	db      string
	backup  string
	journal string
}

func newFixture(tb testing.TB, fs vfs.FS, root string) *fixture {
	tb.Helper()
	f := &fixture{fs: fs, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup")}
	testutil.MkdirDurable(tb, fs, filepath.Join(root, "node"))
	src := filepath.Join(root, "src")
	testutil.MakeDB(tb, fs, src, 2, 300)
	if _, err := kvrflow.Backup(context.Background(), src, f.backup, fs); err != nil {
		tb.Fatal(err)
	}
	testutil.MakeDB(tb, fs, f.db, 1, 200)
	return f
}

func (f *fixture) opts() kvrflow.Options {
	return kvrflow.Options{DB: f.db, Source: f.backup, FS: f.fs, Journal: f.journal}
}

type crashed struct{ point string }

// crashAt runs a restore that stops dead at point, as a kill there would:
// the crash unwinds the goroutine without any journal write.
func crashAt(t *testing.T, opts kvrflow.Options, point string) {
	t.Helper()
	spec := point + ":crash"
	if p, n, ok := strings.Cut(point, "@"); ok {
		spec = p + ":crash@" + n
	}
	fs, err := fault.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	opts.Faults = fs.SetCrash(func(p string) { panic(crashed{p}) })
	defer func() {
		if r := recover(); r == nil {
			t.Fatalf("restore did not reach %s", point)
		} else if _, ok := r.(crashed); !ok {
			panic(r)
		}
	}()
	_, _ = kvrflow.Restore(context.Background(), opts)
}
