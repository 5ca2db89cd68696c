package kvrflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_HostileInputs: each hostile input gets a one-line error
// naming the path and the cause, the error class the CLI maps to its exit
// code, the database byte for byte unchanged, and nothing written or
// removed outside DB and DB.kvrflow.
func TestRestore_HostileInputs(t *testing.T) {
	writeManifest := func(t *testing.T, f *fixture, text string) {
		must(t, os.WriteFile(filepath.Join(f.backup, manifest.Name), []byte(text), 0o644))
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *fixture, o *Options)
		want    error
		mention string
	}{
		{"manifest entry with ../", func(t *testing.T, f *fixture, o *Options) {
			writeManifest(t, f, "kvrflow-backup 1\nengine pebble\nfile ../../etc/passwd 1 00000000\n")
		}, steps.ErrBadSource, "unsafe file name"},
		{"manifest entry with absolute path", func(t *testing.T, f *fixture, o *Options) {
			writeManifest(t, f, "kvrflow-backup 1\nengine pebble\nfile /etc/passwd 1 00000000\n")
		}, steps.ErrBadSource, "unsafe file name"},
		{"manifest of unknown version", func(t *testing.T, f *fixture, o *Options) {
			writeManifest(t, f, "kvrflow-backup 9\nengine pebble\n")
		}, steps.ErrBadSource, "unknown version"},
		{"manifest with a gigabyte line", func(t *testing.T, f *fixture, o *Options) {
			p := filepath.Join(f.backup, manifest.Name)
			must(t, os.WriteFile(p, []byte("kvrflow-backup 1\nfile "), 0o644))
			must(t, os.Truncate(p, 1<<30)) // sparse: costs no disk
		}, steps.ErrBadSource, "longer than"},
		{"manifest of millions of entries", func(t *testing.T, f *fixture, o *Options) {
			var b strings.Builder
			b.WriteString("kvrflow-backup 1\nengine pebble\n")
			for i := 0; i <= manifest.MaxFiles; i++ {
				fmt.Fprintf(&b, "file %d.sst 1 00000000\n", i)
			}
			writeManifest(t, f, b.String())
		}, steps.ErrBadSource, "more than"},
		{"listed file missing", func(t *testing.T, f *fixture, o *Options) {
			must(t, os.Remove(firstSST(t, f.backup)))
		}, steps.ErrBadSource, "missing"},
		{"symlink to outside the backup", func(t *testing.T, f *fixture, o *Options) {
			p := firstSST(t, f.backup)
			outside := filepath.Join(f.root, "outside.sst")
			must(t, os.Rename(p, outside))
			must(t, os.Symlink(outside, p))
		}, steps.ErrBadSource, "symbolic link"},
		{"looping symlink", func(t *testing.T, f *fixture, o *Options) {
			p := firstSST(t, f.backup)
			must(t, os.Remove(p))
			must(t, os.Symlink(p, p))
		}, steps.ErrBadSource, "symbolic link"},
		{"listed table is a FIFO", func(t *testing.T, f *fixture, o *Options) {
			replaceBy(t, firstSST(t, f.backup), func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}, steps.ErrBadSource, "is a FIFO"},
		{"listed table is a FIFO, disk under errorfs", func(t *testing.T, f *fixture, o *Options) {
			replaceBy(t, firstSST(t, f.backup), func(p string) error { return syscall.Mkfifo(p, 0o644) })
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(errorfs.Op) error { return nil }))
		}, steps.ErrBadSource, "is a FIFO"},
		{"listed table is /dev/zero's device node (copy mode)", func(t *testing.T, f *fixture, o *Options) {
			replaceBy(t, firstSST(t, f.backup), func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) })
			o.Mode = steps.ModeCopy
		}, steps.ErrBadSource, "is a character device"},
		{"listed file is a directory", func(t *testing.T, f *fixture, o *Options) {
			replaceBy(t, firstSST(t, f.backup), func(p string) error { return os.Mkdir(p, 0o755) })
		}, steps.ErrBadSource, "is a directory"},
		{"manifest is a FIFO", func(t *testing.T, f *fixture, o *Options) {
			replaceBy(t, filepath.Join(f.backup, manifest.Name), func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}, steps.ErrBadSource, "is a FIFO"},
		{"table replaced by an identical copy after precheck checked it (copy mode)", func(t *testing.T, f *fixture, o *Options) {
			target := firstSST(t, f.backup)
			o.Mode = steps.ModeCopy
			// Only the identity of the file opened tells it apart: same
			// bytes, size and mtime.
			o.FS = errorfs.Wrap(vfs.Default, onceBefore(t, errorfs.OpOpen, target, func() error {
				fi, err := os.Stat(target)
				if err != nil {
					return err
				}
				b, err := os.ReadFile(target)
				if err != nil {
					return err
				}
				if err := os.WriteFile(target+".new", b, 0o644); err != nil {
					return err
				}
				if err := os.Chtimes(target+".new", fi.ModTime(), fi.ModTime()); err != nil {
					return err
				}
				return os.Rename(target+".new", target)
			}))
		}, steps.ErrChecksum, "replaced since it was checked"},
		{"database path is a symlink", func(t *testing.T, f *fixture, o *Options) {
			real := f.db + "-real"
			must(t, os.Rename(f.db, real))
			must(t, os.Symlink(real, f.db))
		}, steps.ErrBadPath, "symbolic link"},
		{"database parent read-only", func(t *testing.T, f *fixture, o *Options) {
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpMkdirAll || op.Kind == errorfs.OpCreate {
					return &os.PathError{Op: "mkdir", Path: op.Path, Err: syscall.EROFS}
				}
				return nil
			}))
		}, steps.ErrBadPath, "read-only file system"},
		{"permission denied in kvrflow's directory", func(t *testing.T, f *fixture, o *Options) {
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpMkdirAll && strings.Contains(op.Path, "staging-") {
					return &os.PathError{Op: "mkdir", Path: op.Path, Err: syscall.EACCES}
				}
				return nil
			}))
		}, fsm.ErrRolledBack, "permission denied"},
		{"backup changes while being copied", func(t *testing.T, f *fixture, o *Options) {
			target := firstSST(t, f.backup)
			var opens atomic.Int32
			o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				// The first open is Write's copy (Precheck only stats a
				// file that will be copied): change the file under it.
				if op.Kind == errorfs.OpOpen && op.Path == target && opens.Add(1) == 1 {
					b, err := os.ReadFile(target)
					if err == nil {
						b[0] ^= 1
						err = os.WriteFile(target, b, 0o644)
					}
					if err != nil {
						t.Error(err)
					}
				}
				return nil
			}))
			o.Mode = steps.ModeCopy
		}, steps.ErrChecksum, "changed while being copied"},
		{"linked table replaced after precheck checked it (same size and mtime)", func(t *testing.T, f *fixture, o *Options) {
			target := firstSST(t, f.backup)
			o.Mode = steps.ModeLink
			o.FS = errorfs.Wrap(vfs.Default, onceBefore(t, errorfs.OpLink, target, func() error {
				fi, err := os.Stat(target)
				if err != nil {
					return err
				}
				b, err := os.ReadFile(target)
				if err != nil {
					return err
				}
				b[len(b)/2] ^= 1
				if err := os.WriteFile(target+".new", b, 0o644); err != nil {
					return err
				}
				// Only the inode tells it apart (touch -r).
				if err := os.Chtimes(target+".new", fi.ModTime(), fi.ModTime()); err != nil {
					return err
				}
				return os.Rename(target+".new", target)
			}))
		}, steps.ErrChecksum, "changed after precheck checked it"},
		{"linked table written in place after precheck checked it", func(t *testing.T, f *fixture, o *Options) {
			target := firstSST(t, f.backup)
			old := time.Now().Add(-time.Hour) // a backup made earlier: a write now changes its mtime
			must(t, os.Chtimes(target, old, old))
			o.Mode, o.Verify = steps.ModeLink, steps.VerifySize
			o.FS = errorfs.Wrap(vfs.Default, onceBefore(t, errorfs.OpLink, target, func() error {
				w, err := os.OpenFile(target, os.O_WRONLY, 0)
				if err != nil {
					return err
				}
				_, err = w.WriteAt([]byte{0xff}, 100)
				return errors.Join(err, w.Close())
			}))
		}, steps.ErrChecksum, "changed after precheck checked it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, vfs.Default, t.TempDir())
			o := f.opts()
			tc.prepare(t, f, &o)
			before := testutil.Snapshot(t, vfs.Default, f.db)
			outside := outsideListing(t, f)
			_, err := Restore(context.Background(), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q: want one line naming %q", msg, tc.mention)
			}
			assertUnchanged(t, before, testutil.Snapshot(t, vfs.Default, f.db))
			if got := outsideListing(t, f); got != outside {
				t.Fatalf("something outside DB and DB.kvrflow changed:\nbefore %s\nafter  %s", outside, got)
			}
			assertNoRunDirs(t, vfs.Default, o.DB)
		})
	}
}

// replaceBy replaces the file at p by what make makes there; a test
// that cannot make it here (mknod without CAP_MKNOD) is skipped.
func replaceBy(t *testing.T, p string, make func(string) error) {
	t.Helper()
	must(t, os.Remove(p))
	if err := make(p); errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot make %s here: %v", p, err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestRestore_TableGrowsWhileCopiedIsRefusedUnread: a table that grows
// after Precheck checked its size is an invalid backup, found by the copy
// after reading its listed size and one byte more, not the rest; the run
// is rolled back.
func TestRestore_TableGrowsWhileCopiedIsRefusedUnread(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	target := firstSST(t, f.backup)
	fi, err := os.Stat(target)
	must(t, err)
	const extra = 64 << 20
	var read atomic.Int64
	o := f.opts()
	o.Mode = steps.ModeCopy
	o.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch {
		case op.Kind == errorfs.OpOpen && op.Path == target && read.Load() == 0:
			read.Store(1) // once
			w, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = w.Write(make([]byte, extra))
				err = errors.Join(err, w.Close())
			}
			if err != nil {
				t.Error(err)
			}
		case op.Kind == errorfs.OpFileRead && op.Path == target:
			read.Add(1)
		}
		return nil
	}))
	before := testutil.Snapshot(t, vfs.Default, f.db)
	_, err = Restore(context.Background(), o)
	if !errors.Is(err, steps.ErrBadSource) || !errors.Is(err, fsm.ErrRolledBack) || !strings.Contains(err.Error(), "grew") {
		t.Fatalf("err = %v, want a rolled-back invalid backup saying the table grew", err)
	}
	// Reads of at most one buffer each, up to the listed size plus one.
	if reads, most := read.Load()-1, fi.Size()/fsx.BufferSize+2; reads > most {
		t.Errorf("%d reads of the table: the copy read on past its listed size (%d bytes; at most %d reads)", reads, fi.Size(), most)
	}
	assertUnchanged(t, before, testutil.Snapshot(t, vfs.Default, f.db))
	assertNoRunDirs(t, vfs.Default, o.DB)
}

// outsideListing lists every path under the fixture's root except DB and
// DB.kvrflow, with sizes.
// onceBefore returns an injector that runs fn the first time an operation
// of kind kind on path is about to happen (it injects no error itself;
// fn's error fails the test).
func onceBefore(t testing.TB, kind errorfs.OpKind, path string, fn func() error) errorfs.Injector {
	var once sync.Once
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == kind && op.Path == path {
			once.Do(func() {
				if err := fn(); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	})
}

func outsideListing(t *testing.T, f *fixture) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(f.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil // a looping symlink is listed, not followed
		}
		if p == f.db || p == f.db+".kvrflow" || strings.HasPrefix(p, f.db+"/") || strings.HasPrefix(p, f.db+".kvrflow/") {
			return filepath.SkipDir
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, f.root), fi.Size())
		return nil
	})
	must(t, err)
	return b.String()
}

// TestRestore_LinkAcrossFileSystemsRefused: --mode link with the backup on
// another file system is bad input; auto falls back to copy.
func TestRestore_LinkAcrossFileSystemsRefused(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "kvrflow")
	if err != nil {
		t.Skipf("no /dev/shm to put the backup on another file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	f := newFixture(t, vfs.Default, t.TempDir())
	seam := fsx.New(vfs.Default, nil)
	a, err1 := seam.FileID(shm)
	b, err2 := seam.FileID(f.root)
	if err1 != nil || err2 != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm is on the same file system as the test directory")
	}
	other := filepath.Join(shm, "backup")
	must(t, os.CopyFS(other, os.DirFS(f.backup)))
	o := f.opts()
	o.Source, o.Mode = other, steps.ModeLink
	_, err = Restore(context.Background(), o)
	if !errors.Is(err, steps.ErrBadPath) || !strings.Contains(err.Error(), "another file system") {
		t.Fatalf("err = %v, want a bad path naming another file system", err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.old) {
		t.Fatal("database changed")
	}
	o.Mode = steps.ModeAuto
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("auto mode did not restore the backup")
	}
	_ = res
}

// TestRestore_ConcurrentRestoresOneProceeds: two restores of one database
// started together: exactly one proceeds, the other fails at once with
// ErrInUse, and the result is a correct restore.
func TestRestore_ConcurrentRestoresOneProceeds(t *testing.T) {
	f := newFixture(t, vfs.Default, t.TempDir())
	// Slow the restores down so they overlap.
	o := f.opts()
	o.FaultSpec = "fs.write:delay=30ms"
	var wg sync.WaitGroup
	errs := make([]error, 2)
	took := make([]time.Duration, 2)
	start := make(chan struct{})
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			_, errs[i] = Restore(context.Background(), o)
			took[i] = time.Since(t0)
		}()
	}
	close(start)
	wg.Wait()
	var ok, busy int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, steps.ErrInUse):
			busy++
			if took[i] > 5*time.Second {
				t.Errorf("the refused restore waited %s", took[i])
			}
		default:
			t.Errorf("restore %d: %v", i, err)
		}
	}
	if ok != 1 || busy != 1 {
		t.Fatalf("%d succeeded, %d refused as in use; want 1 and 1 (%v)", ok, busy, errs)
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the database is not the backup's")
	}
}
