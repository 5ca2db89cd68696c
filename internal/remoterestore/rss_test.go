package remoterestore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// maxRSS is the bound on a remote restore's peak resident memory, whatever
// the backup's size (issue 13).
const maxRSS = 128 << 20

// TestRemote_PeakRSS restores a backup from the server through the binary
// and reads the process's peak RSS (see peakRSS): it must stay under
// 128 MiB. The transfers stream each GET through one 256 KiB buffer,
// steps.RemoteFiles of them at once; the CLI sets an 80 MiB soft heap
// limit for remote sources. An 80 MiB backup in -short, 368 MiB
// otherwise: 2 MiB tables, and files of 64 or 160 MiB, read in ranges of
// steps.RemoteGetSize.
func TestRemote_PeakRSS(t *testing.T) {
	s := newServer(t)
	// Tables of 2 MiB, and files of one or more GetSize ranges.
	keys, blobs := 1<<10, []int64{64 << 20}
	if !testing.Short() {
		keys, blobs = 3<<10, []int64{160 << 20, 160 << 20}
	}
	f := newBigPebbleFixture(t, s, "big", keys, 16<<10, blobs...)
	var total int64
	for _, e := range mustReadDir(t, f.backup) {
		total += e
	}
	must(t, os.RemoveAll(f.backup)) // not needed any more: the bucket has it
	peak := peakRSS(t, "restore", "--from", s.url("big"), "--db", f.db)
	t.Logf("restored %s from the server (%d files in flight, GETs of up to %s): peak RSS %s",
		steps.HumanBytes(total), steps.RemoteFiles, steps.HumanBytes(steps.RemoteGetSize), steps.HumanBytes(peak))
	if peak > maxRSS {
		t.Errorf("peak RSS %s, want at most %s", steps.HumanBytes(peak), steps.HumanBytes(maxRSS))
	}
	if !testutil.Equal(f.keys(t), f.new) {
		t.Fatal("restored database differs from the backup")
	}
}

// mustReadDir returns the sizes of the files in dir.
func mustReadDir(t testing.TB, dir string) []int64 {
	t.Helper()
	es, err := os.ReadDir(dir)
	must(t, err)
	var out []int64
	for _, e := range es {
		fi, err := e.Info()
		must(t, err)
		out = append(out, fi.Size())
	}
	return out
}

// rssHelperEnv makes the test binary a helper that runs kvrflow with the
// arguments in rssArgsEnv and prints its peak RSS in KiB.
const (
	rssHelperEnv = "KVRFLOW_TEST_RSS_HELPER"
	rssArgsEnv   = "KVRFLOW_TEST_RSS_ARGS"
)

// peakRSS runs kvrflow with args and returns its peak resident set size.
// It is the ru_maxrss of the process, read by a helper process (this test
// binary, started afresh) that runs it: Linux carries the high-water mark
// of the memory a process was forked from across exec, and forked from
// the test process, kvrflow's would start at the test's own peak.
func peakRSS(t testing.TB, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), rssHelperEnv+"=1", rssArgsEnv+"="+strings.Join(args, "\x1f"), "GOMEMLIMIT=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kvrflow %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if os.Getenv("KVRFLOW_TEST_RSS_TRACE") != "" {
		t.Logf("%s", stderr.String())
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(stdout.String()), 10, 64)
	if err != nil {
		t.Fatalf("helper said %q: %v", stdout.String(), err)
	}
	return kib << 10
}

// rssHelper runs kvrflow (stderr passed on) and prints its ru_maxrss.
func rssHelper() int {
	cmd := exec.Command(kvrflowPath(), strings.Split(os.Getenv(rssArgsEnv), "\x1f")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "no rusage")
		return 1
	}
	fmt.Println(ru.Maxrss) // KiB on Linux
	return 0
}
