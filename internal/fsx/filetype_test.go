package fsx

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// special makes, in dir, one file of each type a backup must not hold,
// and returns their paths by the kind CheckRegular names. A device needs
// CAP_MKNOD: without it there is none.
func special(t *testing.T, dir string) map[string]string {
	t.Helper()
	p := func(n string) string { return filepath.Join(dir, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("regular"), []byte("data"), 0o644))
	must(syscall.Mkfifo(p("fifo"), 0o644))
	must(os.Mkdir(p("dir"), 0o755))
	must(os.Symlink(p("regular"), p("symlink")))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p("socket"), Net: "unix"})
	must(err)
	t.Cleanup(func() { l.Close() })
	out := map[string]string{"a FIFO": p("fifo"), "a directory": p("dir"), "a symbolic link": p("symlink"), "a socket": p("socket")}
	// /dev/zero's device number: read, it never ends.
	if err := syscall.Mknod(p("chardev"), syscall.S_IFCHR|0o644, int(1<<8|5)); err == nil {
		out["a character device"] = p("chardev")
	} else {
		t.Logf("no character device (mknod: %v)", err)
	}
	return out
}

// onDiskSeams are the seams over the real disk: the disk itself, and the
// disk under errorfs (as the tests that inject errors use it).
func onDiskSeams() map[string]*FS {
	return map[string]*FS{
		"disk":         New(vfs.Default, nil),
		"errorfs-disk": New(errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(errorfs.Op) error { return nil })), nil),
	}
}

// TestCheckRegular_RefusesEveryOtherTypeOfFile: CheckRegular accepts a
// regular file reached through directories and refuses, naming it and
// its type, a FIFO, socket, directory, symbolic link or device, and a
// symbolic link on the way to a regular file, on the disk also under
// errorfs; CopyFile, Checksum and ReadTail refuse them too (a FIFO's open
// does not block) and read nothing.
func TestCheckRegular_RefusesEveryOtherTypeOfFile(t *testing.T) {
	for name, fs := range onDiskSeams() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			paths := special(t, dir)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
			must(os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("x"), 0o644))
			must(os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linkdir")))
			if _, err := fs.CheckRegular(dir, "sub/f"); err != nil {
				t.Fatalf("a regular file: %v", err)
			}
			if _, err := fs.CheckRegular(dir, "linkdir/f"); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "linkdir is a symbolic link") {
				t.Errorf("a file under a symlinked directory: %v, want ErrNotRegular naming the link", err)
			}
			if err := fs.CheckDir(filepath.Join(dir, "linkdir")); !errors.Is(err, ErrNotRegular) {
				t.Errorf("CheckDir of a symlinked directory: %v", err)
			}
			buf := make([]byte, 16)
			for kind, p := range paths {
				_, err := fs.CheckRegular(dir, filepath.Base(p))
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), p+" is "+kind) {
					t.Errorf("CheckRegular(%s): %v, want ErrNotRegular saying it is %s", p, err, kind)
				}
				if kind == "a symbolic link" {
					// Followed, it is the regular file: the open alone
					// refuses it only on the disk itself (O_NOFOLLOW);
					// CheckRegular refused it before.
					if !fs.disk {
						continue
					}
				}
				if _, _, err := fs.CopyFile(context.Background(), p, filepath.Join(dir, "copy-"+filepath.Base(p)), Want{}, buf, nil); !errors.Is(err, ErrNotRegular) {
					t.Errorf("CopyFile(%s): %v, want ErrNotRegular", kind, err)
				}
				if _, _, err := fs.Checksum(context.Background(), p, Want{}, buf); !errors.Is(err, ErrNotRegular) {
					t.Errorf("Checksum(%s): %v, want ErrNotRegular", kind, err)
				}
				if _, _, err := fs.ReadTail(p, buf); !errors.Is(err, ErrNotRegular) {
					t.Errorf("ReadTail(%s): %v, want ErrNotRegular", kind, err)
				}
			}
		})
	}
}

// TestCopyFile_ChecksWhatItOpened: a file opened with another identity
// than the one checked is ErrReplaced; one longer than its expected size
// is ErrGrew, read no further than size+1 bytes; a cancelled context
// stops the copy and the checksum at the next buffer.
func TestCopyFile_ChecksWhatItOpened(t *testing.T) {
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	mem := &countingFS{FS: vfs.NewMem()}
	disk := New(vfs.Default, nil)
	tests := []struct {
		name string
		run  func(t *testing.T) (read int64, err error)
		want error
	}{
		{"replaced since checked", func(t *testing.T) (int64, error) {
			p := writeFile(t, data)
			id, err := disk.FileID(p)
			if err != nil {
				t.Fatal(err)
			}
			id.Ino++
			n, _, err := disk.CopyFile(context.Background(), p, p+".copy", Want{ID: id}, make([]byte, BufferSize), nil)
			return n, err
		}, ErrReplaced},
		{"grew: copy", func(t *testing.T) (int64, error) {
			mem.read = 0
			must(t, writeMem(mem, "/grew", data))
			_, _, err := New(mem, nil).CopyFile(context.Background(), "/grew", "/grew.copy", Want{Size: 100, Sized: true}, make([]byte, BufferSize), nil)
			return mem.read, err
		}, ErrGrew},
		{"grew: checksum", func(t *testing.T) (int64, error) {
			mem.read = 0
			must(t, writeMem(mem, "/grew2", data))
			_, _, err := New(mem, nil).Checksum(context.Background(), "/grew2", Want{Size: 100, Sized: true}, make([]byte, BufferSize))
			return mem.read, err
		}, ErrGrew},
		{"cancelled: copy", func(t *testing.T) (int64, error) {
			p := writeFile(t, data)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n, _, err := disk.CopyFile(ctx, p, p+".copy", Want{}, make([]byte, BufferSize), func(int) { cancel() })
			return n, err
		}, context.Canceled},
		{"cancelled: checksum", func(t *testing.T) (int64, error) {
			mem.read = 0
			must(t, writeMem(mem, "/cancel", data))
			ctx, cancel := context.WithCancel(context.Background())
			mem.onRead = cancel
			defer func() { mem.onRead = nil }()
			_, _, err := New(mem, nil).Checksum(ctx, "/cancel", Want{}, make([]byte, BufferSize))
			return mem.read, err
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read, err := tc.run(t)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if read > BufferSize {
				t.Errorf("%d bytes read of a %d-byte file: want at most one buffer", read, size)
			}
			if tc.want == context.Canceled && !strings.Contains(err.Error(), "interrupted after") {
				t.Errorf("%q does not say how far it got", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, data, 0o644))
	return p
}

func writeMem(fs vfs.FS, path string, data []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}

// countingFS counts the bytes read from files it opens, and calls onRead
// after each read.
type countingFS struct {
	vfs.FS
	read   int64
	onRead func()
}

func (fs *countingFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: fs}, nil
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (f *countingFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.fs.read += int64(n)
	if f.fs.onRead != nil {
		f.fs.onRead()
	}
	return n, err
}

var _ io.Reader = (*countingFile)(nil)
