package remote

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"
)

// streamSetup is a bucket behind the fault proxy holding obj, of size
// bytes, and a Store reading through the proxy with o.
func streamSetup(t *testing.T, o Options, size int) (*faultProxy, *Store, *Store, []byte, Want) {
	t.Helper()
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	direct := openS3(t, gw.Endpoint, bucket, "p", testOptions())
	data := pattern(size, 11)
	putObject(t, direct, "obj", data)
	want := listed(t, direct, "obj").Want()
	want.CRC32C, want.CheckCRC = crc32.Checksum(data, castagnoli), true
	p := newFaultProxy(t, gw)
	return p, openS3(t, p.URL(), bucket, "p", o), direct, data, want
}

// An object up to GetSize is read with one GET, without a Range; a larger
// one with one GET per GetSize, in order, the last to the object's end.
func TestCopy_OneGETPerGetSize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		getSize int64
		size    int
		gets    []string
	}{
		{"smaller than GetSize", 1 << 20, 320 << 10, []string{"->"}},
		{"exactly GetSize", 320 << 10, 320 << 10, []string{"->"}},
		{"2.5 GetSize", 128 << 10, 320 << 10, []string{"bytes=0-131071", "bytes=131072-262143", "bytes=262144-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.GetSize = tc.getSize
			p, s, _, data, want := streamSetup(t, o, tc.size)
			var buf bytes.Buffer
			n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if err != nil || n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("Copy = %d, %08x, %v; want %d bytes, %08x", n, crc, err, len(data), want.CRC32C)
			}
			if got := ranges(p); strings.Join(got, " ") != strings.Join(tc.gets, " ") {
				t.Errorf("GETs with Range %v, want %v (\"->\": no Range)", got, tc.gets)
			}
		})
	}
}

// A body cut half-way is continued by a ranged GET from the first byte
// not written, with the same If-Match: the writer ends with the object's
// bytes exactly, and the crc32c is the object's.
func TestCopy_TruncatedBodyResumesFromTheFirstByteNotWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    fault
	}{
		{"truncated", faultTruncate},
		{"stalled", faultStall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.GetSize = 1 << 20
			o.IdleTimeout = 300 * time.Millisecond
			p, s, _, data, want := streamSetup(t, o, 320<<10)
			p.Add(rule{Method: "GET", Fault: tc.f, Times: 1})
			var buf bytes.Buffer
			n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if err != nil || n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("Copy = %d, %08x, %v; want %d bytes, %08x, equal to the object (%v)", n, crc, err, len(data), want.CRC32C, bytes.Equal(buf.Bytes(), data))
			}
			gets := p.Requests("GET", "/obj")
			if got := ranges(p); strings.Join(got, " ") != "-> bytes=163840-" {
				t.Errorf("GETs with Range %v, want the whole object, then from byte 163840 (half) on", got)
			}
			for _, r := range gets {
				if !strings.HasSuffix(r, "if-match="+want.ETag) {
					t.Errorf("a GET without If-Match %s: %s", want.ETag, r)
				}
			}
		})
	}
}

// A 500 on the continuation of a cut body is retried from the same byte.
func TestCopy_ErrorOnTheContinuationIsRetriedFromTheSameByte(t *testing.T) {
	o := testOptions()
	o.GetSize = 1 << 20
	p, s, _, data, want := streamSetup(t, o, 320<<10)
	p.Add(rule{Method: "GET", From: "bytes=163840-", Fault: fault500, Times: 2})
	p.Add(rule{Method: "GET", Fault: faultTruncate, Times: 1})
	var buf bytes.Buffer
	n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
	if err != nil || n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Copy = %d, %08x, %v; want %d bytes, %08x, equal to the object", n, crc, err, len(data), want.CRC32C)
	}
	if got, w := strings.Join(ranges(p), " "), "-> bytes=163840- bytes=163840- bytes=163840-"; got != w {
		t.Errorf("GETs with Range %s, want %s", got, w)
	}
}

// An object replaced after the first attempt's bytes were written: the
// continuation's If-Match fails (412), ErrChanged at once, and the writer
// holds only the old object's bytes, never the new one's.
func TestCopy_ObjectChangedBetweenAttemptsIsErrChangedNeverMixed(t *testing.T) {
	o := testOptions()
	o.GetSize = 1 << 20
	p, s, direct, data, want := streamSetup(t, o, 320<<10)
	p.Add(rule{Method: "GET", Fault: faultTruncate, Times: 1})
	replaced := false
	w := writerFunc(func(b []byte) (int, error) {
		if !replaced { // the first attempt's body is in flight: replace the object now
			replaced = true
			putObject(t, direct, "obj", pattern(len(data), 12))
		}
		return len(b), nil
	})
	var buf bytes.Buffer
	n, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", io.MultiWriter(&buf, w), want)
	if !errors.Is(err, ErrChanged) || errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("Copy = %v, want ErrChanged, not retried", err)
	}
	t.Logf("the message: %v", err)
	if n != 160<<10 || !bytes.Equal(buf.Bytes(), data[:n]) {
		t.Errorf("the writer got %d bytes (the old object's prefix: %v), want the first attempt's 160 KiB", n, bytes.Equal(buf.Bytes(), data[:buf.Len()]))
	}
	if got := ranges(p); strings.Join(got, " ") != "-> bytes=163840-" {
		t.Errorf("GETs with Range %v, want the whole object, then one continuation", got)
	}
}

// A writer that fails ends the Copy at once: its error is not the store's
// and is not retried.
func TestCopy_WriterErrorIsNotRetried(t *testing.T) {
	o := testOptions()
	p, s, _, _, want := streamSetup(t, o, 320<<10)
	boom := errors.New("disk full")
	written := 0
	w := writerFunc(func(b []byte) (int, error) {
		if written += len(b); written > 100<<10 {
			return 0, boom
		}
		return len(b), nil
	})
	_, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", w, want)
	if !errors.Is(err, boom) || errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("Copy into a failing writer = %v, want its error, not retried", err)
	}
	if gets := p.Requests("GET", "/obj"); len(gets) != 2 {
		t.Errorf("GETs %v, want 2 (the second range's write failed)", gets)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// A flaky link that cuts one long GET several times, each attempt
// passing bytes on, more times than RetryAttempts: the attempts that
// moved the copy forward by at least a buffer (256 KiB) are not counted,
// so the copy completes (with 64 MiB GETs, a link that drops every few
// MiB must not fail where GETs of a few MiB each would succeed).
func TestCopy_AttemptsThatMadeProgressAreNotCounted(t *testing.T) {
	o := testOptions()
	o.GetSize = 64 << 20
	p, s, _, data, want := streamSetup(t, o, 8<<20)
	// Each cut delivers half of what was asked: 4 MiB, 2, 1, 512 KiB,
	// 256 KiB (five attempts that made progress), then 128, 64, 32 KiB
	// (three that count, fewer than RetryAttempts, 4).
	p.Add(rule{Method: "GET", Fault: faultTruncate, Times: 8})
	var buf bytes.Buffer
	n, crc, err := s.Copy(ctxT(t, 60*time.Second), "obj", &buf, want)
	if err != nil || n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Copy = %d, %08x, %v; want %d bytes, %08x, equal to the object", n, crc, err, len(data), want.CRC32C)
	}
	if got := len(p.Requests("GET", "/obj")); got != 9 {
		t.Errorf("%d GETs, want 9 (8 cut, then the rest)", got)
	}
}

// Edge sizes: an empty object (one GET, nothing written, its crc32c 0),
// an object of exactly GetSize (one GET) and of GetSize+1 (a second GET
// for the last byte), each also cut once in transit and continued, and a
// resumed copy starting at the last byte.
func TestCopy_EdgeSizes(t *testing.T) {
	const g = 256 << 10
	for _, tc := range []struct {
		name   string
		size   int
		cut    bool
		offset int64
		gets   string
	}{
		{"empty", 0, false, 0, "->"},
		{"GetSize", g, false, 0, "->"},
		{"GetSize+1", g + 1, false, 0, "bytes=0-262143 bytes=262144-"},
		{"GetSize cut", g, true, 0, "-> bytes=131072-"},
		{"GetSize+1 cut", g + 1, true, 0, "bytes=0-262143 bytes=131072-262143 bytes=262144-"},
		{"GetSize+1 from the last byte", g + 1, false, g, "bytes=262144-"},
		{"GetSize+2 from the last byte", g + 2, false, g + 1, "bytes=262145-"},
		{"cut at a buffer's end", 4 * g, true, 0, "-> bytes=524288-"},
		{"cut after one buffer", 2 * g, true, 0, "-> bytes=262144-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.GetSize = g
			if tc.size > 2*g || tc.name == "cut after one buffer" {
				o.GetSize = 4 * g
			}
			p, s, _, data, want := streamSetup(t, o, tc.size)
			if tc.cut {
				p.Add(rule{Method: "GET", Fault: faultTruncate, Times: 1})
			}
			want.Offset, want.PrefixCRC = tc.offset, crc32.Checksum(data[:tc.offset], castagnoli)
			var buf bytes.Buffer
			n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if err != nil || n != int64(len(data))-tc.offset || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data[tc.offset:]) {
				t.Fatalf("Copy = %d, %08x, %v; want %d bytes, %08x", n, crc, err, int64(len(data))-tc.offset, want.CRC32C)
			}
			if got := strings.Join(ranges(p), " "); got != tc.gets {
				t.Errorf("GETs with Range %s, want %s", got, tc.gets)
			}
		})
	}
}
