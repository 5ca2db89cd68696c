package remote

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// genReaderAt is size deterministic bytes, made from their offset: a large
// object without a large buffer.
type genReaderAt struct{ size int64 }

func (g genReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.size-off))
	var w [8]byte
	for i := 0; i < n; {
		pos := off + int64(i)
		binary.LittleEndian.PutUint64(w[:], uint64(pos/8)*0x9E3779B97F4A7C15)
		i += copy(p[i:n], w[pos%8:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (g genReaderAt) Read(p []byte) (int, error) { panic("use ReadAt") }

// TestCopy_Big256MiBThroughputAndMemory puts a 256 MiB object, then copies
// it in a child process (this test binary again) with the default options
// and reports the child's throughput and peak RSS, which must stay under
// 128 MiB. It runs only with KVRFLOW_REMOTE_BIG=1 (about 10 s here).
func TestCopy_Big256MiBThroughputAndMemory(t *testing.T) {
	if os.Getenv("KVRFLOW_REMOTE_BIG") != "1" {
		t.Skip("KVRFLOW_REMOTE_BIG=1 runs the 256 MiB throughput and memory test")
	}
	const size = 256 << 20
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	s := openS3(t, gw.Endpoint, bucket, "big", Options{})
	start := time.Now()
	crc, err := s.Put(ctxT(t, 5*time.Minute), "obj", io.NewSectionReader(genReaderAt{size}, 0, size), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Put 256 MiB (multipart): %.0f MiB/s", float64(size>>20)/time.Since(start).Seconds())

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCopyBig$", "-test.v")
	cmd.Env = append(os.Environ(), "KVRFLOW_REMOTE_CHILD="+s3URL(gw.Endpoint, bucket, "big"),
		"KVRFLOW_REMOTE_CHILD_CRC="+strconv.FormatUint(uint64(crc), 10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("child:\n%s", out)
	// ru_maxrss may count the parent's pages at the fork; the child's own
	// VmHWM (checked by the child) is the honest peak.
	t.Logf("Copy of 256 MiB in a child process: rusage maxrss %d MiB", ru.Maxrss>>10)
}

// TestHelperCopyBig is the child of TestCopy_Big256MiBThroughputAndMemory.
func TestHelperCopyBig(t *testing.T) {
	url := os.Getenv("KVRFLOW_REMOTE_CHILD")
	if url == "" {
		t.Skip("a child process of TestCopy_Big256MiBThroughputAndMemory")
	}
	s, err := Open(ctxT(t, 30*time.Second), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.ParseUint(os.Getenv("KVRFLOW_REMOTE_CHILD_CRC"), 10, 32)
	fmt.Printf("before Copy (after Open): %s\n", procStatus("VmRSS", "VmHWM"))
	start := time.Now()
	n, crc, err := s.Copy(ctxT(t, 5*time.Minute), "obj", io.Discard, Want{Size: -1, CRC32C: uint32(want), CheckCRC: true})
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if crc != crc32.Checksum(nil, castagnoli) && n == 0 {
		t.Fatal("nothing copied")
	}
	fmt.Printf("after Copy: %s\n", procStatus("VmRSS", "VmHWM", "RssAnon", "RssFile"))
	var hwm int64
	fmt.Sscanf(procStatus("VmHWM"), "VmHWM: %d kB", &hwm)
	if hwm == 0 || hwm > 128<<10 {
		t.Errorf("peak RSS (VmHWM) %d KiB, want at most 128 MiB", hwm)
	}
	fmt.Printf("Copy: %d bytes in %v: %.0f MiB/s (GETs of 64 MiB, streamed)\n", n, el.Round(time.Millisecond), float64(n>>20)/el.Seconds())
}

// procStatus returns the named lines of /proc/self/status, on one line.
func procStatus(names ...string) string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, n := range names {
			if strings.HasPrefix(l, n+":") {
				out = append(out, strings.Join(strings.Fields(l), " "))
			}
		}
	}
	return strings.Join(out, ", ")
}
