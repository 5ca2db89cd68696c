package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRestore_SpecialFileInSourceExits2: a FIFO, a device node, a
// directory or a symbolic link where a source lists a file, from a
// kvrflow backup and from a RocksDB BackupEngine directory, is bad input:
// exit 2 at once, one Error line naming the path and what it is, the
// database unchanged, nothing left in flight. (Read, /dev/zero's node
// never ends and a FIFO blocks the open: a restore that got as far as
// opening either would not end.)
func TestRestore_SpecialFileInSourceExits2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, f *fixture) (bad string)
		mention string
	}{
		{"FIFO listed", func(t *testing.T, f *fixture) string {
			p := firstTable(t, f.backup)
			replaceWith(t, p, func(p string) error { return syscall.Mkfifo(p, 0o644) })
			return p
		}, "is a FIFO"},
		{"character device listed", func(t *testing.T, f *fixture) string {
			p := firstTable(t, f.backup)
			replaceWith(t, p, func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) })
			return p
		}, "is a character device"},
		{"directory listed", func(t *testing.T, f *fixture) string {
			p := firstTable(t, f.backup)
			replaceWith(t, p, func(p string) error { return os.Mkdir(p, 0o755) })
			return p
		}, "is a directory"},
		{"RocksDB private/1 a symbolic link to outside the backup", func(t *testing.T, f *fixture) string {
			// A BackupEngine directory, written by hand: OpenSource
			// refuses it before reading any file's data.
			f.backup = filepath.Join(f.root, "rocks-backup")
			outside := filepath.Join(f.root, "outside")
			for _, p := range []string{filepath.Join(f.backup, "meta"), filepath.Join(f.backup, "private"), outside} {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			meta := "1700000000\n5\n2\nprivate/1/CURRENT crc32 1\nprivate/1/MANIFEST-000005 crc32 2\n"
			for p, data := range map[string]string{
				filepath.Join(f.backup, "meta", "1"):      meta,
				filepath.Join(outside, "CURRENT"):         "MANIFEST-000005\n",
				filepath.Join(outside, "MANIFEST-000005"): "x",
			} {
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(f.backup, "private", "1")
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "is a symbolic link"},
	} {
		for _, mode := range []string{"copy", "auto"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, 100, 50)
				bad := tc.prepare(t, f)
				r := mustRun(t, exitUsage, nil, f.restoreArgs("--mode", mode)...)
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				last := lines[len(lines)-1]
				if !strings.HasPrefix(last, "Error: ") || !strings.Contains(last, bad) || !strings.Contains(last, tc.mention) {
					t.Errorf("last stderr line %q: want the Error naming %s and saying it %s", last, bad, tc.mention)
				}
				if got := f.which(t); got != "old" {
					t.Errorf("database holds the %s contents", got)
				}
				if st := status(t, f.db); len(st.InFlight) != 0 || len(st.Leftovers) != 0 {
					t.Errorf("status: in flight %+v, leftovers %v", st.InFlight, st.Leftovers)
				}
			})
		}
	}
}

// firstTable returns the path of the first .sst file in dir.
func firstTable(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no table in %s: %v", dir, err)
	}
	return m[0]
}

// replaceWith replaces the file p by what make makes there; a test that
// cannot make it here (mknod without CAP_MKNOD) is skipped.
func replaceWith(t *testing.T, p string, make func(string) error) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := make(p); errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot make %s here: %v", p, err)
	} else if err != nil {
		t.Fatal(err)
	}
}
