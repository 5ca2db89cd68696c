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

// faultSetup is a bucket behind the fault proxy holding obj: 5 parts of
// 64 KiB.
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

func TestCopy_TransientFaultsAreRetriedAndTheCopyIsExact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fault
	}{
		{"500", fault500},
		{"503 SlowDown", faultSlowDown},
		{"connection reset", faultReset},
		{"truncated body", faultTruncate},
		{"short body with a matching Content-Length", faultShort},
		{"stalled body", faultStall},
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
			if gets := p.Requests("GET", "/obj"); len(gets) != 5+2 {
				t.Errorf("%d GETs, want 5 parts + 2 retries: %v", len(gets), gets)
			}
		})
	}
}

func TestCopy_PersistentlyDamagedBodyIsNeverReturnedAsData(t *testing.T) {
	for _, f := range []fault{faultTruncate, faultShort, faultReset} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			o := testOptions()
			p, s, data, want := faultSetup(t, o)
			from := fmt.Sprintf("bytes=%d-", 2*o.PartSize)
			p.Add(rule{Method: "GET", From: from, Fault: f, Times: -1})
			var buf bytes.Buffer
			n, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
			if !errors.Is(err, ErrRetriesExhausted) {
				t.Fatalf("Copy = %v, want ErrRetriesExhausted", err)
			}
			if f != faultReset && !errors.Is(err, ErrTruncated) {
				t.Errorf("Copy = %v, want ErrTruncated", err)
			}
			t.Logf("the message: %v", err)
			// Whole parts only, in order, and never the damaged one.
			if n > 2*o.PartSize || n%o.PartSize != 0 || !bytes.Equal(buf.Bytes(), data[:n]) {
				t.Errorf("the writer got %d bytes (equal to the object's prefix: %v), want whole parts before the third", n, bytes.Equal(buf.Bytes(), data[:n]))
			}
			third := 0
			for _, r := range p.Requests("GET", "/obj") {
				if strings.Contains(r, from) {
					third++
				}
			}
			// net/http itself sends a GET again once when a reused
			// connection is reset before any answer: up to twice per attempt.
			if third != o.RetryAttempts && (f != faultReset || third < o.RetryAttempts || third > 2*o.RetryAttempts) {
				t.Errorf("the third part was asked for %d times, want %d (RetryAttempts): %v", third, o.RetryAttempts, p.Requests("GET", "/obj"))
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
	o.PartSize = 1 << 20
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
