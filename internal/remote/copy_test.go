package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// putObject writes data at key through s and checks Put's crc32c.
func putObject(t testing.TB, s *Store, key string, data []byte) {
	t.Helper()
	crc, err := s.Put(ctxT(t, 60*time.Second), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	if want := crc32.Checksum(data, castagnoli); crc != want {
		t.Fatalf("Put %s: crc %08x, want %08x", key, crc, want)
	}
}

// listed returns the listing entry of key.
func listed(t testing.TB, s *Store, key string) Object {
	t.Helper()
	objs, err := s.List(ctxT(t, 20*time.Second))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, o := range objs {
		if o.Key == key {
			return o
		}
	}
	t.Fatalf("List: no %s in %v", key, objs)
	return Object{}
}

func TestCopy_RoundTripsEverySizeInRanges(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	var progress atomic.Int64
	o.Progress = func(key string, n int64) { progress.Add(n) }
	s := openS3(t, gw.Endpoint, bucket, "backup/1", o)
	ps := int(o.GetSize)
	sizes := []int{0, 1, ps - 1, ps, ps + 1, 7*ps + 3}
	for i, n := range sizes {
		putObject(t, s, fmt.Sprintf("dir/obj-%d", i), pattern(n, byte(i)))
	}
	objs, err := s.List(ctxT(t, 10*time.Second))
	if err != nil || len(objs) != len(sizes) {
		t.Fatalf("List = %v, %v; want %d objects", objs, err, len(sizes))
	}
	for _, obj := range objs {
		var i int
		fmt.Sscanf(obj.Key, "dir/obj-%d", &i)
		data := pattern(sizes[i], byte(i))
		if obj.Size != int64(len(data)) || obj.ETag == "" || obj.ModTime.IsZero() {
			t.Errorf("listed %+v, want size %d, an ETag and a time", obj, len(data))
		}
		progress.Store(0)
		want := obj.Want()
		want.CRC32C, want.CheckCRC = crc32.Checksum(data, castagnoli), true
		var buf bytes.Buffer
		n, crc, err := s.Copy(ctxT(t, 20*time.Second), obj.Key, &buf, want)
		if err != nil {
			t.Fatalf("Copy %s: %v", obj.Key, err)
		}
		if n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
			t.Errorf("Copy %s: %d bytes crc %08x, want %d bytes crc %08x (equal %v)", obj.Key, n, crc, len(data), want.CRC32C, bytes.Equal(buf.Bytes(), data))
		}
		if progress.Load() != n {
			t.Errorf("Copy %s: progress reported %d bytes, copied %d", obj.Key, progress.Load(), n)
		}
	}
	// Size unknown: Copy asks first.
	var buf bytes.Buffer
	if n, _, err := s.Copy(ctxT(t, 20*time.Second), "dir/obj-5", &buf, Want{Size: -1}); err != nil || n != int64(sizes[5]) {
		t.Errorf("Copy with an unknown size = %d, %v", n, err)
	}
}

func TestList_PaginatesAndIsRelativeToThePrefix(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	defer func(n int) { listPageSize = n }(listPageSize)
	listPageSize = 3
	s := openS3(t, gw.Endpoint, bucket, "a/b", testOptions())
	other := openS3(t, gw.Endpoint, bucket, "a/bc", testOptions())
	putObject(t, other, "not-mine", []byte("x"))
	if _, err := s.List(ctxT(t, 10*time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("List of an empty prefix = %v, want ErrNotFound", err)
	}
	var want []string
	for i := range 11 {
		key := fmt.Sprintf("k%02d", i)
		putObject(t, s, key, []byte(key))
		want = append(want, key)
	}
	objs, err := s.List(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List = %v, want %v", got, want)
	}
}

func TestCopy_ObjectChangedSinceTheListingIsErrChanged(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	p := newFaultProxy(t, gw)
	s := openS3(t, p.URL(), bucket, "p", testOptions())
	data := pattern(300<<10, 1)
	for _, tc := range []struct {
		name    string
		replace []byte
	}{
		{"same size, other bytes", pattern(300<<10, 2)},
		{"longer", pattern(300<<10+1, 1)},
		{"shorter", data[:100<<10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			putObject(t, s, "obj", data)
			obj := listed(t, s, "obj")
			putObject(t, s, "obj", tc.replace)
			before := len(p.Requests("GET", "/obj"))
			var buf bytes.Buffer
			start := time.Now()
			_, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, obj.Want())
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("Copy of a changed object = %v, want ErrChanged", err)
			}
			if buf.Len() > 0 {
				t.Errorf("the writer got %d bytes of the changed object", buf.Len())
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("Copy took %v to fail", el)
			}
			t.Logf("the message: %v", err)
			checkMessage(t, err, "s3://"+bucket+"/p/obj")
			if gets := len(p.Requests("GET", "/obj")) - before; gets > 5 { // 5 ranges, none retried
				t.Errorf("%d GETs: ErrChanged was retried", gets)
			}
			// Without the ETag (file://-like), size and the extra byte still tell.
			if tc.name != "same size, other bytes" {
				w := obj.Want()
				w.ETag = ""
				w.ModTime = time.Time{}
				var got bytes.Buffer
				if _, _, err := s.Copy(ctxT(t, 20*time.Second), "obj", &got, w); !errors.Is(err, ErrChanged) {
					t.Errorf("Copy without ETag = %v, want ErrChanged", err)
				}
				if got.Len() > len(data) || !bytes.Equal(got.Bytes(), tc.replace[:got.Len()]) {
					t.Errorf("Copy without ETag wrote %d bytes, want at most the %d listed, of the object", got.Len(), len(data))
				}
			}
		})
	}
}

func TestCopy_MissingObjectIsErrNotFoundNotRetried(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	p := newFaultProxy(t, gw)
	s := openS3(t, p.URL(), bucket, "p", testOptions())
	_, _, err := s.Copy(ctxT(t, 10*time.Second), "nothing-here", io.Discard, Want{Size: 10})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Copy of a missing object = %v, want ErrNotFound", err)
	}
	checkMessage(t, err, "s3://"+bucket+"/p/nothing-here")
	if gets := p.Requests("GET", "/nothing-here"); len(gets) != 1 {
		t.Errorf("GETs %v: want exactly one (404 is not retried)", gets)
	}
	if _, err := s.Stat(ctxT(t, 10*time.Second), "nothing-here"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat of a missing object = %v, want ErrNotFound", err)
	}
}

func TestCopy_RateLimitCapsTheTransfer(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	s := openS3(t, gw.Endpoint, bucket, "p", o)
	data := pattern(1<<20, 3)
	putObject(t, s, "obj", data)
	o.RateLimit = 2 << 20 // 2 MiB/s: 1 MiB less the 256 KiB burst takes 0.375 s
	slow := openS3(t, gw.Endpoint, bucket, "p", o)
	start := time.Now()
	if _, _, err := slow.Copy(ctxT(t, 20*time.Second), "obj", io.Discard, Want{Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 330*time.Millisecond || el > 3*time.Second {
		t.Errorf("1 MiB at 2 MiB/s took %v, want about 0.375 s", el)
	}
}

func TestCopy_CancelReturnsPromptly(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	s := openS3(t, gw.Endpoint, bucket, "p", o)
	data := pattern(4<<20, 4)
	putObject(t, s, "obj", data)
	o.RateLimit = 512 << 10 // 8 s for the whole object
	slow := openS3(t, gw.Endpoint, bucket, "p", o)
	ctx, cancel := context.WithCancel(context.Background())
	var canceled time.Time
	time.AfterFunc(400*time.Millisecond, func() { canceled = time.Now(); cancel() })
	_, _, err := slow.Copy(ctx, "obj", io.Discard, Want{Size: int64(len(data))})
	late := time.Since(canceled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy cancelled = %v, want context.Canceled", err)
	}
	if late > 200*time.Millisecond {
		t.Errorf("Copy returned %v after the cancel, want within 200 ms", late)
	}
}

// A rate far below the idle timeout's pace must not look like a stall:
// the watchdog pauses while the limiter holds the transfer back.
func TestCopy_SlowRateIsNotAStall(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	s := openS3(t, gw.Endpoint, bucket, "p", o)
	data := pattern(320<<10, 5)
	putObject(t, s, "obj", data)
	o.RateLimit = 32 << 10 // past the 256 KiB burst, a read of more than 3.2 KiB waits longer than the idle timeout
	o.IdleTimeout = 100 * time.Millisecond
	slow := openS3(t, gw.Endpoint, bucket, "p", o)
	var buf bytes.Buffer
	if _, _, err := slow.Copy(ctxT(t, 20*time.Second), "obj", &buf, Want{Size: int64(len(data))}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("a rate-limited Copy failed: %v", err)
	}
}

// TestCopy_FromAnOffsetContinuesTheChecksum copies an object from several
// offsets, as a resumed transfer does: the bytes from the offset on
// arrive, in ranges, and the crc32c returned (and checked) is the
// whole object's, continued from the prefix's. An offset at or past the
// end is refused.
func TestCopy_FromAnOffsetContinuesTheChecksum(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	s := openS3(t, gw.Endpoint, bucket, "backup/1", o)
	ps := int(o.GetSize)
	data := pattern(7*ps+3, 9)
	putObject(t, s, "big", data)
	whole := crc32.Checksum(data, castagnoli)
	obj := listed(t, s, "big")
	for _, off := range []int{1, ps - 1, ps, 3*ps + 5, len(data) - 1} {
		want := obj.Want()
		want.Offset, want.PrefixCRC = int64(off), crc32.Checksum(data[:off], castagnoli)
		want.CRC32C, want.CheckCRC = whole, true
		var buf bytes.Buffer
		n, crc, err := s.Copy(ctxT(t, 20*time.Second), "big", &buf, want)
		if err != nil {
			t.Fatalf("Copy from %d: %v", off, err)
		}
		if n != int64(len(data)-off) || crc != whole || !bytes.Equal(buf.Bytes(), data[off:]) {
			t.Errorf("Copy from %d: %d bytes crc %08x, want %d bytes crc %08x", off, n, crc, len(data)-off, whole)
		}
	}
	want := obj.Want()
	want.Offset = int64(len(data))
	if _, _, err := s.Copy(ctxT(t, 20*time.Second), "big", io.Discard, want); !errors.Is(err, ErrChanged) {
		t.Errorf("Copy from the end: %v, want refused", err)
	}
}
