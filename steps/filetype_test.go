package steps

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
)

// sourceFiles are the files of the three kinds of source the tests build
// by hand: OpenSource reads only their names, the manifest and the meta
// file, never their data.
var sourceFiles = map[string][]string{
	KindKvrflow:    {"000005.sst", "CURRENT", "MANIFEST-000001"},
	KindRocksdb:    {"shared_checksum/000007_123_10.sst", "private/1/CURRENT", "private/1/MANIFEST-000005"},
	KindCheckpoint: {"000005.sst", "CURRENT", "MANIFEST-000001"},
}

// makeSource writes a source of kind in dir: its files, and the manifest
// (kvrflow) or meta/1 (RocksDB) listing them.
func makeSource(t *testing.T, kind, dir string) {
	t.Helper()
	var m manifest.Manifest
	meta := "1700000000\n5\n3\n"
	for _, rel := range sourceFiles[kind] {
		p := filepath.Join(dir, rel)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mustDo(t, os.WriteFile(p, []byte("0123456789"), 0o644))
		m.Files = append(m.Files, manifest.File{Name: rel, Size: 10})
		meta += rel + " crc32 1\n"
	}
	switch kind {
	case KindKvrflow:
		m.Engine = EnginePebble
		mustDo(t, os.WriteFile(filepath.Join(dir, manifest.Name), m.Encode(), 0o644))
	case KindRocksdb:
		mustDo(t, os.MkdirAll(filepath.Join(dir, "meta"), 0o755))
		mustDo(t, os.WriteFile(filepath.Join(dir, "meta", "1"), []byte(meta), 0o644))
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
func mkdir(p string) error  { return os.Mkdir(p, 0o755) }

// mkchardev makes /dev/zero's device node at p (it needs CAP_MKNOD).
func mkchardev(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) }

// symlinkTo returns a maker of a symbolic link to a copy, outside the
// source, of what is at the path.
func symlinkTo(t *testing.T) func(p string) error {
	return func(p string) error {
		outside := filepath.Join(t.TempDir(), "outside")
		if err := os.WriteFile(outside, []byte("0123456789"), 0o644); err != nil {
			return err
		}
		return os.Symlink(outside, p)
	}
}

// TestOpenSource_ReadsOnlyRegularFiles: from every kind of source, a FIFO,
// device, directory or symbolic link where a file is listed or read (the
// manifest, the meta file, a checkpoint's files), or a symbolic link on
// the way to one (a RocksDB private/N directory), is ErrBadSource, in one
// line naming the path and what it is, found before that path is opened;
// on the disk and on the disk under errorfs. A source directory given
// through a symbolic link is read at the place it resolves to.
func TestOpenSource_ReadsOnlyRegularFiles(t *testing.T) {
	tests := []struct {
		kind    string
		name    string
		bad     string // relative to the source
		make    func(t *testing.T) func(string) error
		mention string
	}{
		{KindKvrflow, "listed table is a FIFO", "000005.sst", func(*testing.T) func(string) error { return mkfifo }, "is a FIFO"},
		{KindKvrflow, "listed table is a character device", "000005.sst", func(*testing.T) func(string) error { return mkchardev }, "is a character device"},
		{KindKvrflow, "listed file is a directory", "CURRENT", func(*testing.T) func(string) error { return mkdir }, "is a directory"},
		{KindKvrflow, "listed file is a symbolic link", "CURRENT", symlinkTo, "is a symbolic link"},
		{KindKvrflow, "manifest is a FIFO", manifest.Name, func(*testing.T) func(string) error { return mkfifo }, "is a FIFO"},
		{KindKvrflow, "manifest is a symbolic link", manifest.Name, symlinkTo, "is a symbolic link"},
		{KindRocksdb, "shared table is a FIFO", "shared_checksum/000007_123_10.sst", func(*testing.T) func(string) error { return mkfifo }, "is a FIFO"},
		{KindRocksdb, "private file is a character device", "private/1/CURRENT", func(*testing.T) func(string) error { return mkchardev }, "is a character device"},
		{KindRocksdb, "private file is a directory", "private/1/MANIFEST-000005", func(*testing.T) func(string) error { return mkdir }, "is a directory"},
		{KindRocksdb, "private/1 is a symbolic link to outside", "private/1", func(t *testing.T) func(string) error {
			return func(p string) error {
				outside := filepath.Join(t.TempDir(), "private-1")
				if err := os.MkdirAll(outside, 0o755); err != nil {
					return err
				}
				for _, n := range []string{"CURRENT", "MANIFEST-000005"} {
					if err := os.WriteFile(filepath.Join(outside, n), []byte("0123456789"), 0o644); err != nil {
						return err
					}
				}
				return os.Symlink(outside, p)
			}
		}, "private/1 is a symbolic link"},
		{KindRocksdb, "meta file is a FIFO", "meta/1", func(*testing.T) func(string) error { return mkfifo }, "is a FIFO"},
		{KindRocksdb, "meta directory is a symbolic link", "meta", func(t *testing.T) func(string) error {
			return func(p string) error {
				outside := filepath.Join(t.TempDir(), "meta")
				if err := os.MkdirAll(outside, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(outside, "1"), []byte("1\n1\n0\n"), 0o644); err != nil {
					return err
				}
				return os.Symlink(outside, p)
			}
		}, "meta is a symbolic link"},
		{KindCheckpoint, "CURRENT is a FIFO", "CURRENT", func(*testing.T) func(string) error { return mkfifo }, "is a FIFO"},
		{KindCheckpoint, "table is a character device", "000005.sst", func(*testing.T) func(string) error { return mkchardev }, "is a character device"},
		{KindCheckpoint, "table is a symbolic link", "000005.sst", symlinkTo, "is a symbolic link"},
	}
	for _, tc := range tests {
		for _, seam := range []string{"disk", "errorfs-disk"} {
			t.Run(tc.kind+"/"+tc.name+"/"+seam, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "source")
				makeSource(t, tc.kind, dir)
				bad := filepath.Join(dir, tc.bad)
				if err := os.RemoveAll(bad); err != nil {
					t.Fatal(err)
				}
				if err := tc.make(t)(bad); err != nil {
					if errors.Is(err, syscall.EPERM) {
						t.Skipf("cannot make it here: %v", err)
					}
					t.Fatal(err)
				}
				fs := fsx.New(vfs.Default, nil)
				var mu sync.Mutex
				var opened []string
				if seam == "errorfs-disk" {
					fs = fsx.New(errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
						if op.Kind == errorfs.OpOpen {
							mu.Lock()
							opened = append(opened, op.Path)
							mu.Unlock()
						}
						return nil
					})), nil)
				}
				_, err := OpenSource(fs, dir, EngineAuto, 0)
				if !errors.Is(err, ErrBadSource) {
					t.Fatalf("err = %v, want ErrBadSource", err)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.mention) || !strings.Contains(msg, dir) {
					t.Errorf("message %q: want one line naming the path and %q", msg, tc.mention)
				}
				for _, p := range opened {
					if strings.HasPrefix(p, bad) {
						t.Errorf("%s was opened", p)
					}
				}
			})
		}
	}
}

// TestOpenSource_SourceGivenThroughASymlink: the source directory itself
// may be a symbolic link (the operator's spelling); it is resolved once.
func TestOpenSource_SourceGivenThroughASymlink(t *testing.T) {
	for _, kind := range []string{KindKvrflow, KindRocksdb, KindCheckpoint} {
		t.Run(kind, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "source")
			makeSource(t, kind, dir)
			link := filepath.Join(root, "link")
			mustDo(t, os.Symlink(dir, link))
			src, err := OpenSource(fsx.New(vfs.Default, nil), link, EngineAuto, 0)
			if err != nil {
				t.Fatal(err)
			}
			real, err := filepath.EvalSymlinks(dir)
			mustDo(t, err)
			for _, f := range src.Files {
				if !strings.HasPrefix(f.Path, real+string(filepath.Separator)) {
					t.Errorf("%s read at %s, want under %s", f.Name, f.Path, real)
				}
			}
		})
	}
}
