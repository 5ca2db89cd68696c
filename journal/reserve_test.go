package journal_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kvrflow/kvrflow/journal"
)

// smallFS mounts a tmpfs of size bytes on a temporary directory and
// unmounts it when the test ends (after the journals opened later are
// closed). It needs root: without it the test is skipped, unless CI is
// "true", where a skipped full-disk test would hide a regression.
func smallFS(tb testing.TB, size int64) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		msg := fmt.Sprintf("cannot mount a %d-byte tmpfs on %s (root needed): %v; the full-disk tests need a small real file system", size, dir, err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillFS writes to a new file in dir until the file system refuses even
// one more byte, and checks that statfs agrees it is full.
func fillFS(tb testing.TB, dir string) {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, unix.ENOSPC) {
					tb.Fatalf("fill %s: %v", dir, err)
				}
				break
			}
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Fatal(err)
	}
	if st.Bavail != 0 {
		tb.Fatalf("%s still has %d blocks free after filling it", dir, st.Bavail)
	}
}

// journalOnFullDisk journals runs of ten transitions each (Begin, then
// Append from start to a rolled-back outcome, notes of 3 KiB of details
// between), stopping at the first error, which it returns with the
// number of transitions that succeeded.
func journalOnFullDisk(j *journal.Journal, runs int) (int, error) {
	details := map[string]string{"pad": strings.Repeat("x", 3<<10)}
	n := 0
	for range runs {
		r, err := j.Begin(journal.Run{Kind: "restore", Source: "/backup", Target: "/db", State: "new"})
		if err != nil {
			return n, err
		}
		n++
		steps := [][3]string{{"new", "start", "precheck"}}
		for range 7 {
			steps = append(steps, [3]string{"precheck", "note", "precheck"})
		}
		steps = append(steps, [3]string{"precheck", "fail", "failed"})
		for i, s := range steps {
			outcome := ""
			if i == len(steps)-1 {
				outcome = "rolled_back"
			}
			if err := j.Append(r.ID, s[0], s[1], s[2], details, outcome, ""); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func TestReserve_JournalKeepsWritingOnAFullDisk(t *testing.T) {
	dir := smallFS(t, 16<<20)
	path := filepath.Join(dir, "journal.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if room, err := j.Reserved(); err != nil || room < journal.DefaultReserve {
		t.Fatalf("Reserved() = %d, %v; want at least %d, nil", room, err, journal.DefaultReserve)
	}
	// A run began and wrote its staging files; something else filled the
	// disk.
	r := begin(t, j, "/db", "new")
	mustAppend(t, j, r.ID, "new", "start", "write", nil, "", "")
	fillFS(t, dir)

	// The run can still journal its failure, and 200 more transitions fit.
	mustAppend(t, j, r.ID, "write", "fail", "failed", nil, "rolled_back", "no space left on device")
	if n, err := journalOnFullDisk(j, 20); err != nil {
		t.Fatalf("on a full disk with the reserve, transition %d failed: %v", n+1, err)
	}
	checkJournal(t, j)
	mustCheck(t, j)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// Recovery reopens the journal on the still-full disk. Once records
	// have used more than the slack Open allocates beyond the reserve, the
	// reserve cannot be topped up: Open still succeeds, says why, and what
	// is left of the reserve takes recovery's records.
	var room int64
	for batch := 0; ; batch++ {
		j, err = journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatalf("reopen on a full disk: %v", err)
		}
		room, err = j.Reserved()
		if err != nil {
			break
		}
		if batch == 20 {
			j.Close()
			t.Fatalf("Open never failed to top up the reserve on a full disk (room %d)", room)
		}
		if n, err := journalOnFullDisk(j, 10); err != nil {
			j.Close()
			t.Fatalf("on a full disk with the reserve, transition %d of batch %d failed: %v", n+1, batch, err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	defer j.Close()
	if !errors.Is(err, unix.ENOSPC) || room <= 0 || room >= journal.DefaultReserve {
		t.Errorf("Reserved() on a full disk = %d, %v; want the room left (0 < room < %d) and ENOSPC", room, err, journal.DefaultReserve)
	}
	r = begin(t, j, "/db", "new")
	mustAppend(t, j, r.ID, "new", "abort", "rollback", nil, "", "")
	mustAppend(t, j, r.ID, "rollback", "rolled_back", "failed", nil, "rolled_back", "")
	checkJournal(t, j)
	mustCheck(t, j)
	t.Logf("on the full disk, Open reports: %d bytes of room left: %v", room, err)
}

// The control: the same records without a reserve fail on the full disk,
// so the test above shows the reserve at work, not a lenient file system.
func TestReserve_WithoutItAFullDiskStopsTheJournal(t *testing.T) {
	dir := smallFS(t, 16<<20)
	path := filepath.Join(dir, "journal.db")
	j, err := journal.Open(path, journal.Options{Reserve: journal.NoReserve})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if room, err := j.Reserved(); room != 0 || err != nil {
		t.Errorf("Reserved() with NoReserve = %d, %v; want 0, nil", room, err)
	}
	fillFS(t, dir)
	n, err := journalOnFullDisk(j, 20)
	if err == nil {
		t.Fatalf("200 transitions journaled on a full disk without a reserve; the test cannot tell the reserve works")
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("transition %d failed with %v, want ENOSPC", n+1, err)
	}
	t.Logf("without a reserve, transition %d of 200 failed: %v", n+1, err)
}

func TestReserve_OpenAllocatesOnceAndReadOnlyNever(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	for i := range 2 {
		j, err := journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		room, err := j.Reserved()
		if errors.Is(err, unix.EOPNOTSUPP) {
			j.Close()
			t.Skipf("the file system of %s cannot fallocate: %v", path, err)
		}
		if err != nil || room < journal.DefaultReserve {
			t.Errorf("open %d: Reserved() = %d, %v; want at least %d, nil", i+1, room, err, journal.DefaultReserve)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		used := highWater(t, path)
		if want := used + journal.DefaultReserve; fi.Size() < want || fi.Sys().(*syscall.Stat_t).Blocks*512 < want {
			t.Errorf("open %d: journal file is %d bytes (%d allocated), its pages in use reach %d: less than %d of room",
				i+1, fi.Size(), fi.Sys().(*syscall.Stat_t).Blocks*512, used, journal.DefaultReserve)
		}
	}
	ro, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if room, err := ro.Reserved(); room != 0 || err != nil {
		t.Errorf("read-only Reserved() = %d, %v; want 0, nil", room, err)
	}
}
