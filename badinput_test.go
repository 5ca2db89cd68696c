package kvrflow

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_BadInputLeavesDatabaseUntouched runs restores that must
// fail on bad input and checks for each: the error's class, a one-line
// message naming the path and the cause, and the database unchanged byte
// for byte.
func TestRestore_BadInputLeavesDatabaseUntouched(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *fixture, o *Options)
		want    error
		mention string // a path or word the message must name
	}{
		{"missing source", func(t *testing.T, f *fixture, o *Options) { o.Source = filepath.Join(f.root, "nope") },
			steps.ErrBadSource, "nope"},
		{"source without manifest", func(t *testing.T, f *fixture, o *Options) {
			must(t, os.Remove(filepath.Join(f.backup, manifest.Name)))
		}, steps.ErrBadSource, manifest.Name},
		{"bit-flipped file", func(t *testing.T, f *fixture, o *Options) {
			flipByte(t, firstSST(t, f.backup), 2, 0x10)
		}, steps.ErrBadSource, ".sst"},
		{"bit-flipped file, copy mode (caught while copying)", func(t *testing.T, f *fixture, o *Options) {
			flipByte(t, firstSST(t, f.backup), 2, 0x10)
			o.Mode = steps.ModeCopy
		}, steps.ErrBadSource, ".sst"},
		{"table footer overwritten, link mode --verify size", func(t *testing.T, f *fixture, o *Options) {
			p := firstSST(t, f.backup)
			b, err := os.ReadFile(p)
			must(t, err)
			clear(b[len(b)-8:])
			must(t, os.WriteFile(p, b, 0o644))
			o.Mode, o.Verify = steps.ModeLink, steps.VerifySize
		}, steps.ErrBadSource, "magic number"},
		{"truncated file", func(t *testing.T, f *fixture, o *Options) {
			must(t, os.Truncate(firstSST(t, f.backup), 100))
		}, steps.ErrBadSource, "truncated"},
		{"unlisted file", func(t *testing.T, f *fixture, o *Options) {
			must(t, os.WriteFile(filepath.Join(f.backup, "extra"), []byte("x"), 0o644))
		}, steps.ErrBadSource, "extra"},
		{"corrupt manifest", func(t *testing.T, f *fixture, o *Options) {
			p := filepath.Join(f.backup, manifest.Name)
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(b), "pebble", "pebblf", 1)), 0o644))
		}, steps.ErrBadSource, "checksum"},
		{"unknown verification level", func(t *testing.T, f *fixture, o *Options) { o.Verify = "fast" }, steps.ErrBadOption, `"fast"`},
		{"unknown mode", func(t *testing.T, f *fixture, o *Options) { o.Mode = "move" }, steps.ErrBadOption, `"move"`},
		{"source equal to db", func(t *testing.T, f *fixture, o *Options) { o.Source = f.db }, steps.ErrBadPath, "overlap"},
		{"source inside db", func(t *testing.T, f *fixture, o *Options) {
			o.Source = filepath.Join(f.db, "inner")
		}, steps.ErrBadPath, "overlap"},
		{"db inside source", func(t *testing.T, f *fixture, o *Options) {
			o.Source = filepath.Dir(f.db)
		}, steps.ErrBadPath, "overlap"},
		{"db parent missing", func(t *testing.T, f *fixture, o *Options) {
			o.DB = filepath.Join(f.root, "no", "db")
		}, steps.ErrBadPath, filepath.Join("no")},
		{"db is a file", func(t *testing.T, f *fixture, o *Options) {
			o.DB = filepath.Join(f.root, "file")
			must(t, os.WriteFile(o.DB, []byte("x"), 0o644))
		}, steps.ErrBadPath, "not a directory"},
		{"db open by pebble", func(t *testing.T, f *fixture, o *Options) {
			db, err := pebble.Open(f.db, &pebble.Options{Logger: steps.PebbleLogger(nopLog())})
			must(t, err)
			t.Cleanup(func() { db.Close() })
		}, steps.ErrInUse, "LOCK"},
		{"no space while writing", func(t *testing.T, f *fixture, o *Options) {
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpFileWrite && strings.Contains(op.Path, "staging-") {
					return syscall.ENOSPC
				}
				return nil
			}))
		}, syscall.ENOSPC, "no space left on device"},
		{"no space at precheck", func(t *testing.T, f *fixture, o *Options) {
			mem := vfs.NewMem()
			m := newFixture(t, mem, "/s")
			mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 1 << 30})
			*f, *o = *m, m.opts()
			o.Journal = filepath.Join(t.TempDir(), "journal.db")
		}, steps.ErrNoSpace, "MiB free"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			o := f.opts()
			tc.prepare(t, f, &o)
			fs := o.FS
			if fs == nil {
				fs = vfs.Default
			}
			live := tc.want == steps.ErrInUse // a live Pebble owns the database and may change it
			var before map[string]string
			if !live {
				before = testutil.Snapshot(t, fs, o.DB)
			}
			_, err := Restore(context.Background(), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q: want one line naming %q", msg, tc.mention)
			}
			if !live {
				assertUnchanged(t, before, testutil.Snapshot(t, fs, o.DB))
			}
			if names, err := fs.List(o.DB + ".kvrflow"); err == nil {
				for _, n := range names {
					if strings.HasPrefix(n, "staging-") || strings.HasPrefix(n, "old-") {
						t.Errorf("left %s behind", n)
					}
				}
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// flipByte xors the byte at 1/at of the file at p with mask, in place.
func flipByte(t testing.TB, p string, at int, mask byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	b[len(b)/at] ^= mask
	must(t, os.WriteFile(p, b, 0o644))
}

func firstSST(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no .sst in %s", dir)
	}
	return m[0]
}

// assertUnchanged fails the test if a database snapshot changed.
func assertUnchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("database changed: %d entries before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("database changed: %s differs", k)
		}
	}
}
