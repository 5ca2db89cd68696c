package fsx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"

	"github.com/kvrflow/kvrflow/internal/fault"
)

func TestRenameDurable_RefusesAnExistingTarget(t *testing.T) {
	for name, v := range map[string]vfs.FS{"disk": vfs.Default, "mem": vfs.NewMem()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if name == "mem" {
				dir = "/x"
			}
			fs := New(v, nil)
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			for _, p := range []string{a, b} {
				if err := fs.MkdirDurable(p); err != nil {
					t.Fatal(err)
				}
			}
			err := fs.RenameDurable(a, b)
			if !errors.Is(err, os.ErrExist) {
				t.Fatalf("rename onto an existing directory: %v, want ErrExist", err)
			}
			if ok, _ := fs.Exists(a); !ok {
				t.Fatal("the source moved")
			}
			if err := fs.MkdirDurable(a); !errors.Is(err, os.ErrExist) {
				t.Fatalf("MkdirDurable of an existing dir: %v", err)
			}
		})
	}
}

func TestExchange_SwapsTwoDirectoriesOnDisk(t *testing.T) {
	dir := t.TempDir()
	fs := New(vfs.Default, nil)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "sub", "b")
	for _, p := range []string{a, b} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ida, _ := fs.FileID(a)
	idb, _ := fs.FileID(b)
	if err := fs.Exchange(a, b); err != nil {
		if errors.Is(err, ErrExchangeUnsupported) {
			t.Skipf("file system cannot exchange: %v", err)
		}
		t.Fatal(err)
	}
	na, _ := fs.FileID(a)
	nb, _ := fs.FileID(b)
	if na != idb || nb != ida {
		t.Fatalf("ids after exchange %v %v, want %v %v", na, nb, idb, ida)
	}
	if _, err := New(vfs.NewMem(), nil).FileID("/"); !errors.Is(err, ErrNoFileID) {
		t.Errorf("FileID on memory: %v, want ErrNoFileID", err)
	}
	if err := New(vfs.NewMem(), nil).Exchange("/a", "/b"); !errors.Is(err, ErrExchangeUnsupported) {
		t.Errorf("Exchange on memory: %v, want ErrExchangeUnsupported", err)
	}
}

func TestLock_HeldLockIsErrLockHeld(t *testing.T) {
	fs := New(vfs.Default, nil)
	p := filepath.Join(t.TempDir(), "LOCK")
	l, err := fs.Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := fs.Lock(p); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("second lock: %v, want ErrLockHeld", err)
	}
}

func TestCopyFileAndWriteFileDurable(t *testing.T) {
	fs := New(vfs.Default, nil)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := fs.WriteFileDurable(src, []byte("hello, kvrflow")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	n, crc, err := fs.CopyFile(context.Background(), src, filepath.Join(dir, "dst"), Want{}, make([]byte, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	n2, crc2, err := fs.Checksum(context.Background(), filepath.Join(dir, "dst"), Want{}, make([]byte, 3))
	if err != nil || n != 14 || n2 != n || crc2 != crc {
		t.Fatalf("copy %d %08x, read back %d %08x, %v", n, crc, n2, crc2, err)
	}
	if files, _ := fs.Syncs(); files != 2 {
		t.Errorf("file syncs %d, want 2 (the written file and the copy)", files)
	}
}

func TestFaults_HitAroundDurableOperations(t *testing.T) {
	set, err := fault.Parse(PointBeforeRename + ":eio")
	if err != nil {
		t.Fatal(err)
	}
	fs := New(vfs.NewMem(), set)
	if err := fs.MkdirDurable("/a"); err != nil {
		t.Fatal(err)
	}
	if err := fs.RenameDurable("/a", "/b"); !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("rename with an injected EIO: %v", err)
	}
	if ok, _ := fs.Exists("/a"); !ok {
		t.Fatal("the rename happened although the fault point before it failed")
	}
}

func TestChecksumFromDevice_MatchesChecksumAndHasAFaultPoint(t *testing.T) {
	for name, v := range map[string]vfs.FS{"disk": vfs.Default, "mem": vfs.NewMem()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if name == "mem" {
				dir = "/x"
				if err := v.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, "f")
			data := make([]byte, 3*BufferSize/2+7)
			for i := range data {
				data[i] = byte(i * 7)
			}
			fs := New(v, nil)
			if err := fs.WriteFileDurable(p, data); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, BufferSize)
			size, crc, err := fs.Checksum(context.Background(), p, Want{}, buf)
			if err != nil {
				t.Fatal(err)
			}
			dsize, dcrc, err := fs.ChecksumFromDevice(context.Background(), p, buf)
			if err != nil || dsize != size || dcrc != crc || size != int64(len(data)) {
				t.Fatalf("from device: %d %08x %v; checksum: %d %08x", dsize, dcrc, err, size, crc)
			}
			faults, err := fault.Parse(PointReadBack + ":eio")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := New(v, faults).ChecksumFromDevice(context.Background(), p, buf); !errors.Is(err, fault.ErrInjected) {
				t.Fatalf("with %s:eio: %v", PointReadBack, err)
			}
		})
	}
}

func TestReadTail_ReturnsTheLastBytes(t *testing.T) {
	dir := t.TempDir()
	fs := New(vfs.Default, nil)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{4, "6789"}, {10, "0123456789"}, {16, "0123456789"}} {
		tail, size, err := fs.ReadTail(p, make([]byte, tc.n))
		if err != nil || string(tail) != tc.want || size != 10 {
			t.Errorf("ReadTail(%d) = %q, %d, %v; want %q", tc.n, tail, size, err, tc.want)
		}
	}
	missing := filepath.Join(dir, "nope")
	if _, _, err := fs.ReadTail(missing, make([]byte, 8)); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestDropCache_EvictsAFsyncedFile: after dropCache none of a fsynced
// file's pages is in the page cache (mincore), so ChecksumFromDevice's
// read comes from the device.
func TestDropCache_EvictsAFsyncedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	fs := New(vfs.Default, nil)
	if err := fs.WriteFileDurable(p, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fs.Checksum(context.Background(), p, Want{}, make([]byte, BufferSize)); err != nil { // cache it
		t.Fatal(err)
	}
	resident := func() int {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := unix.Mmap(int(f.Fd()), 0, 64<<10, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(m)
		vec := make([]byte, (64<<10+os.Getpagesize()-1)/os.Getpagesize())
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	if n := resident(); n == 0 {
		t.Skip("the file's pages are not cached after reading it (a file system without a page cache?)")
	}
	if err := fs.dropCache(p); err != nil {
		t.Fatal(err)
	}
	if n := resident(); n != 0 {
		t.Fatalf("%d pages still cached after dropCache", n)
	}
}
