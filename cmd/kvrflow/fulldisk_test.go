package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// onSmallDisk moves the fixture's database onto a tmpfs of size mounted
// for the test (the backup stays on the test's disk), so that the disk
// holding DB and DB.kvrflow can be filled.
func onSmallDisk(t *testing.T, f *fixture, size string) string {
	t.Helper()
	mnt := filepath.Join(f.root, "small")
	must(t, os.Mkdir(mnt, 0o755))
	mountTmpfs(t, mnt, size)
	db := filepath.Join(mnt, "db")
	must(t, os.CopyFS(db, os.DirFS(f.db)))
	must(t, os.RemoveAll(f.db))
	f.db = db
	return mnt
}

// fillDisk writes a file in dir until the file system is full (ENOSPC)
// and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	defer w.Close()
	buf := bytes.Repeat([]byte{'f'}, 1<<20)
	for {
		if _, err := w.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	small := buf[:4096]
	for {
		if _, err := w.Write(small); err != nil {
			break
		}
	}
	return p
}

// freeBytes is the space free on the file system holding dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	must(t, syscall.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize
}

// TestRestore_DiskFilledDuringTheCopyRollsBackAndGivesTheSpaceBack: on a
// real small file system, another process fills the disk while a restore
// copies (after Precheck found room): the copy meets ENOSPC, the run is
// rolled back at once (exit 1), the journal takes its records from its
// reserve, staging is removed, and the space it held is free again,
// without the operator deleting anything.
func TestRestore_DiskFilledDuringTheCopyRollsBackAndGivesTheSpaceBack(t *testing.T) {
	f := newBigFixture(t)
	mnt := onSmallDisk(t, f, "96m")
	// Each buffer written waits 200 ms. When the 10th buffer's wait
	// begins, each of the (at most steps.Workers = 4) copy workers has
	// finished every buffer before its last: at least 6 buffers, no more
	// than 3 of them the small files', so staging holds 3 MiB or more.
	w := watch(t, []string{fault.EnvVar + "=fs.write:delay=200ms"}, firedLine("fs.write", 10),
		f.restoreArgs("--mode", "copy", "--log-level", "debug")...)
	if !w.await(t) {
		t.Fatalf("the copy did not reach its 10th buffer:\n%s", w.end(t))
	}
	m, _ := filepath.Glob(f.db + ".kvrflow/staging-*")
	if len(m) != 1 {
		t.Fatalf("staging directories: %v", m)
	}
	staged := dirBytes(t, m[0])
	if staged < 2<<20 {
		t.Fatalf("staging holds %d bytes at the 10th buffer, want 2 MiB or more", staged)
	}
	filler := fillDisk(t, mnt)
	r := w.end(t)
	t.Logf("staging held %d bytes when the disk was filled; %d bytes free after the rollback", staged, freeBytes(t, mnt))
	if r.code != exitRolledBack {
		t.Fatalf("want exit 1 (rolled back), got %s", r)
	}
	if !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("the error does not say the disk is full:\n%s", r.stderr)
	}
	if m, _ := filepath.Glob(f.db + ".kvrflow/staging-*"); len(m) != 0 {
		t.Errorf("staging left on the full disk: %v", m)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("the database holds the %s contents", got)
	}
	if free := freeBytes(t, mnt); free < staged {
		t.Errorf("only %d bytes free after the rollback: staging's space was not given back", free)
	}
	must(t, os.Remove(filler))
	mustRun(t, exitOK, nil, f.restoreArgs()...)
}

// TestRecover_OnAFullDiskRollsBackAndFreesStaging: a restore killed while
// copying, then the disk filled to the last byte: kvrflow recover still
// journals its records (from the journal's reserve), rolls the run back,
// and frees staging's space.
func TestRecover_OnAFullDiskRollsBackAndFreesStaging(t *testing.T) {
	f := newBigFixture(t)
	mnt := onSmallDisk(t, f, "96m")
	r := cli(t, []string{fault.EnvVar + "=fs.write:crash@5"}, f.restoreArgs("--mode", "copy")...)
	if r.signal != syscall.SIGKILL {
		t.Fatalf("the restore was not killed while copying: %s", r)
	}
	filler := fillDisk(t, mnt)
	before := freeBytes(t, mnt)
	rec := mustRun(t, exitOK, nil, "recover", "--db", f.db)
	if !strings.Contains(rec.stdout, "rolled_back") {
		t.Errorf("recover did not roll the run back:\n%s", rec)
	}
	if m, _ := filepath.Glob(f.db + ".kvrflow/staging-*"); len(m) != 0 {
		t.Errorf("staging left: %v", m)
	}
	if after := freeBytes(t, mnt); after <= before {
		t.Errorf("free space %d before recover, %d after: staging's space was not given back", before, after)
	}
	if got := f.which(t); got != "old" {
		t.Errorf("the database holds the %s contents", got)
	}
	must(t, os.Remove(filler))
}

// dirBytes is the size of the files below dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
