package remote

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"
)

// faultSetup is a bucket behind the fault proxy holding obj: 5 ranges of
// 64 KiB (testOptions' GetSize).
func faultSetup(t *testing.T, o Options) (*faultProxy, *Store, []byte, Want) {
	t.Helper()
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	direct := openS3(t, gw.Endpoint, bucket, "p", testOptions())
	data := pattern(5*64<<10, 7)
	putObject(t, direct, "obj", data)
	want := listed(t, direct, "obj").Want()
	want.CRC32C, want.CheckCRC = crc32.Checksum(data, castagnoli), true
	p := newFaultProxy(t, gw)
	return p, openS3(t, p.URL(), bucket, "p", o), data, want
}

// repeated returns the ranges of obj that were asked for more than once.
func repeated(p *faultProxy) []string {
	seen := map[string]int{}
	var out []string
	for _, r := range p.Requests("GET", "/obj") {
		if seen[r]++; seen[r] == 2 {
			out = append(out, r)
		}
	}
	return out
}

// ranges returns the Range headers of the GETs of obj, in order.
func ranges(p *faultProxy) []string {
	var out []string
	for _, r := range p.Requests("GET", "/obj") {
		out = append(out, strings.Fields(r)[2])
	}
	return out
}

// A transient fault is retried from the first byte not yet written: the
// same range again after an error answer or a reset, the rest of it after
// a body cut short or stalled half-way.
func TestCopy_TransientFaultsAreRetriedAndTheCopyIsExact(t *testing.T) {
	const again = "bytes=65536-131071 bytes=65536-131071 bytes=65536-131071"
	const rest = "bytes=65536-131071 bytes=98304-131071 bytes=114688-131071"
	for _, tc := range []struct {
		name  string
		fault fault
		gets  string // the Range headers of the second to the fourth GET
	}{
		{"500", fault500, again},
		{"503 SlowDown", faultSlowDown, again},
		{"connection reset", faultReset, again},
		{"truncated body", faultTruncate, rest},
		{"short body with a matching Content-Length", faultShort, rest},
		{"stalled body", faultStall, rest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.IdleTimeout = 300 * time.Millisecond
			p, s, data, want := faultSetup(t, o)
			p.Add(rule{Method: "GET", Ranged: true, Fault: tc.fault, Times: 2})
			var buf bytes.Buffer
			n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if err != nil {
				t.Fatalf("Copy through two %s faults: %v", tc.name, err)
			}
			if n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
				t.Fatalf("Copy: %d bytes, crc %08x, want %d, %08x", n, crc, len(data), want.CRC32C)
			}
			gets := ranges(p)
			if len(gets) != 5+2 || strings.Join(gets[1:4], " ") != tc.gets {
				t.Errorf("GETs %v, want 5 ranges + 2 retries, the retries %s", gets, tc.gets)
			}
			for _, r := range p.Requests("GET", "/obj") {
				if !strings.HasSuffix(r, "if-match="+want.ETag) {
					t.Errorf("a GET without If-Match %s: %s", want.ETag, r)
				}
			}
		})
	}
}

// A fault that does not end exhausts the range's attempts. The writer
// then holds a prefix of the object, every byte at its offset: the whole
// ranges before, and what the cut bodies brought of the failing one, each
// attempt continuing where the last one's bytes ended.
func TestCopy_PersistentlyDamagedBodyIsNeverReturnedAsData(t *testing.T) {
	for _, tc := range []struct {
		f    fault
		n    int64    // the bytes written
		gets []string // the failing range's GETs
	}{
		{faultTruncate, 65536 + 32768 + 16384 + 8192 + 4096,
			[]string{"bytes=65536-131071", "bytes=98304-131071", "bytes=114688-131071", "bytes=122880-131071"}},
		{faultShort, 65536 + 32768 + 16384 + 8192 + 4096,
			[]string{"bytes=65536-131071", "bytes=98304-131071", "bytes=114688-131071", "bytes=122880-131071"}},
		{faultReset, 65536, nil},
	} {
		t.Run(fmt.Sprint(tc.f), func(t *testing.T) {
			o := testOptions()
			p, s, data, want := faultSetup(t, o)
			p.Add(rule{Method: "GET", Ranged: true, Fault: tc.f, Times: -1}) // every range but the first
			var buf bytes.Buffer
			n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if !errors.Is(err, ErrRetriesExhausted) {
				t.Fatalf("Copy = %v, want ErrRetriesExhausted", err)
			}
			if tc.f != faultReset && !errors.Is(err, ErrTruncated) {
				t.Errorf("Copy = %v, want ErrTruncated", err)
			}
			t.Logf("the message: %v", err)
			if n != tc.n || n != int64(buf.Len()) || !bytes.Equal(buf.Bytes(), data[:n]) || crc != crc32.Checksum(data[:n], castagnoli) {
				t.Errorf("Copy returned %d bytes, crc %08x; the writer got %d (the object's prefix: %v); want %d bytes and their crc",
					n, crc, buf.Len(), bytes.Equal(buf.Bytes(), data[:buf.Len()]), tc.n)
			}
			gets := ranges(p)[1:]
			if tc.gets != nil && strings.Join(gets, " ") != strings.Join(tc.gets, " ") {
				t.Errorf("the second range's GETs %v, want %v", gets, tc.gets)
			}
			// net/http itself sends a GET again once when a reused
			// connection is reset before any answer: up to twice per attempt.
			if tc.gets == nil && (len(gets) < o.RetryAttempts || len(gets) > 2*o.RetryAttempts) {
				t.Errorf("the second range was asked for %d times, want %d (RetryAttempts): %v", len(gets), o.RetryAttempts, gets)
			}
		})
	}
}

func TestCopy_PermanentFaultsAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fault
		kind  error
	}{
		{"403", fault403, ErrAccessDenied},
		{"404", fault404, ErrNotFound},
		{"a flipped byte", faultFlip, ErrChecksum},
		{"Range ignored", faultNoRange, nil}, // without the crc: the check of Content-Range alone must refuse it
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, s, _, want := faultSetup(t, testOptions())
			want.CheckCRC = tc.kind == ErrChecksum
			r := rule{Method: "GET", Ranged: true, Fault: tc.fault, Times: -1}
			if tc.fault == faultNoRange {
				r = rule{Method: "GET", From: "bytes=65536-", Fault: tc.fault, Times: -1} // a middle part only
			}
			p.Add(r)
			start := time.Now()
			_, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", io.Discard, want)
			if err == nil || (tc.kind != nil && !errors.Is(err, tc.kind)) || errors.Is(err, ErrRetriesExhausted) {
				t.Fatalf("Copy = %v, want an error (kind %v), not retried", err, tc.kind)
			}
			t.Logf("the message: %v", err)
			checkMessage(t, err, "/p/obj", gwSecret)
			if r := repeated(p); len(r) > 0 {
				t.Errorf("ranges asked for again: %v", r)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("Copy took %v to fail", el)
			}
		})
	}
}

// A whole-object GET with a flipped byte: the SDK's response checksum (if
// the server sent one) or the crc32c check catches it, not retried.
func TestCopy_FlippedByteInASinglePartObjectIsErrChecksum(t *testing.T) {
	o := testOptions()
	o.GetSize = 1 << 20
	p, s, _, want := faultSetup(t, o)
	p.Add(rule{Method: "GET", Fault: faultFlip, Times: -1})
	_, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", io.Discard, want)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Copy = %v, want ErrChecksum", err)
	}
	if gets := p.Requests("GET", "/obj"); len(gets) != 1 {
		t.Errorf("GETs %v, want one", gets)
	}
	t.Logf("the message: %v", err)
}

func TestCopy_StalledServerIsBoundedByTheIdleTimeout(t *testing.T) {
	o := testOptions()
	o.IdleTimeout = 300 * time.Millisecond
	o.RetryAttempts = 3
	p, s, _, want := faultSetup(t, o)
	p.Add(rule{Method: "GET", Fault: faultStall, Times: -1})
	start := time.Now()
	_, _, err := s.Copy(ctxT(t, 30*time.Second), "obj", io.Discard, want)
	el := time.Since(start)
	if !errors.Is(err, ErrStalled) || !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("Copy from a stalled server = %v, want ErrStalled after the retries", err)
	}
	// 3 attempts of 0.3 s and two backoffs of at most 50 ms.
	if el < 900*time.Millisecond || el > 3*time.Second {
		t.Errorf("Copy gave up after %v, want about 1 s", el)
	}
	t.Logf("the message: %v (after %v)", err, el)
}

func TestCopy_RetryBudgetIsSharedByAllParts(t *testing.T) {
	o := testOptions()
	o.RetryAttempts = 100
	o.RetryBudget = 3
	p, s, _, want := faultSetup(t, o)
	p.Add(rule{Method: "GET", Fault: fault500, Times: -1})
	_, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", io.Discard, want)
	if !errors.Is(err, ErrRetriesExhausted) || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("Copy = %v, want the budget spent", err)
	}
	if gets := p.Requests("GET", "/obj"); len(gets) > 5+o.RetryBudget {
		t.Errorf("%d GETs, want at most 5 first attempts + %d retries", len(gets), o.RetryBudget)
	}
}
