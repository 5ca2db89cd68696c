// Package testutil has helpers the tests of several packages share: small
// Pebble databases with known contents (made by internal/sampledb), and
// their comparison key by key (internal/check).
package testutil

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/sampledb"
)

// MakeDB creates (or adds to) the Pebble database dir on fs with n keys
// derived from seed (sampledb's short text values), flushing every n/3
// keys so it has several tables and a WAL, and returns its contents.
func MakeDB(tb testing.TB, fs vfs.FS, dir string, seed uint64, n int) map[string]string {
	tb.Helper()
	if err := sampledb.Make(fs, dir, sampledb.Spec{Seed: seed, Keys: n, Flushes: 3}); err != nil {
		tb.Fatal(err)
	}
	return ReadDB(tb, fs, dir)
}

// ReadDB returns every key and value of the Pebble database in dir, opened
// read-only.
func ReadDB(tb testing.TB, fs vfs.FS, dir string) map[string]string {
	tb.Helper()
	kv, err := TryReadDB(fs, dir)
	if err != nil {
		tb.Fatalf("read %s: %v", dir, err)
	}
	return kv
}

// TryReadDB is ReadDB returning the error.
func TryReadDB(fs vfs.FS, dir string) (map[string]string, error) { return check.Keys(fs, dir) }

// Equal reports whether two databases' contents are the same.
func Equal(a, b map[string]string) bool { return check.Equal(a, b) }

// MkdirDurable creates dir and its parents on fs and syncs each level, so
// a crash clone keeps them.
func MkdirDurable(tb testing.TB, fs vfs.FS, dir string) {
	tb.Helper()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		f, err := fs.OpenDir(d)
		if err != nil {
			tb.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		if d == filepath.Dir(d) {
			return
		}
	}
}

// Snapshot returns every file below dir on fs with its contents, keyed by
// path relative to dir; directories map to "<dir>". A missing dir gives
// nil.
func Snapshot(tb testing.TB, fs vfs.FS, dir string) map[string]string {
	tb.Helper()
	fi, err := fs.Stat(dir)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	if !fi.IsDir() {
		f, err := fs.Open(dir)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			tb.Fatal(err)
		}
		out["."] = string(b)
		return out
	}
	var walk func(rel string)
	walk = func(rel string) {
		names, err := fs.List(filepath.Join(dir, rel))
		if err != nil {
			tb.Fatal(err)
		}
		for _, n := range names {
			r := filepath.Join(rel, n)
			fi, err := fs.Stat(filepath.Join(dir, r))
			if err != nil {
				tb.Fatal(err)
			}
			if fi.IsDir() {
				out[r] = "<dir>"
				walk(r)
				continue
			}
			f, err := fs.Open(filepath.Join(dir, r))
			if err != nil {
				tb.Fatal(err)
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				tb.Fatal(err)
			}
			out[r] = string(b)
		}
	}
	walk("")
	return out
}
