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

func TestPutIfAbsent_NeverReplacesAnObject(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	o := testOptions()
	o.PartSize = 5 << 20
	p := newFaultProxy(t, gw)
	s := openS3(t, p.URL(), bucket, "p", o)
	for _, tc := range []struct {
		name string
		size int
	}{
		{"one PUT", 100 << 10},
		{"multipart", 17 << 20}, // above the transfer manager's 16 MiB threshold
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "obj-" + strings.ReplaceAll(tc.name, " ", "-")
			first := pattern(tc.size, 1)
			crc, err := s.PutIfAbsent(ctxT(t, 60*time.Second), key, bytes.NewReader(first), int64(len(first)))
			if err != nil || crc != crc32.Checksum(first, castagnoli) {
				t.Fatalf("PutIfAbsent of a new key = %08x, %v", crc, err)
			}
			second := pattern(tc.size, 2)
			_, err = s.PutIfAbsent(ctxT(t, 60*time.Second), key, bytes.NewReader(second), int64(len(second)))
			if !errors.Is(err, ErrExists) {
				t.Fatalf("PutIfAbsent of an existing key = %v, want ErrExists", err)
			}
			checkMessage(t, err, "s3://"+bucket+"/p/"+key, gwSecret)
			// The condition went with the request that commits the object.
			commits := p.Requests("PUT", "/"+key)
			if tc.size > 16<<20 {
				commits = nil
				for _, r := range p.Requests("POST", "/"+key) {
					if strings.Contains(r, "uploadId=") {
						commits = append(commits, r)
					}
				}
			}
			if len(commits) != 2 || !strings.Contains(commits[1], "if-none-match=*") {
				t.Errorf("the committing requests %v: want two, with If-None-Match: *", commits)
			}
			var buf bytes.Buffer
			if _, _, err := s.Copy(ctxT(t, 60*time.Second), key, &buf, Want{Size: -1}); err != nil || !bytes.Equal(buf.Bytes(), first) {
				t.Fatalf("after the refused PutIfAbsent the object is not the first one (%v)", err)
			}
			// Put replaces.
			putObject(t, s, key, second)
			buf.Reset()
			if _, _, err := s.Copy(ctxT(t, 60*time.Second), key, &buf, Want{Size: -1}); err != nil || !bytes.Equal(buf.Bytes(), second) {
				t.Fatalf("Put did not replace the object (%v)", err)
			}
		})
	}
}

func TestPut_SourceOfTheWrongSizeWritesNothing(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	s := openS3(t, gw.Endpoint, bucket, "p", testOptions())
	data := pattern(1000, 3)
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"shorter, ReaderAt", bytes.NewReader(data), 1001},
		{"longer, ReaderAt", bytes.NewReader(data), 999},
		{"shorter, plain reader", io.MultiReader(bytes.NewReader(data)), 1001},
		{"longer, plain reader", io.MultiReader(bytes.NewReader(data)), 999},
	} {
		_, err := s.Put(ctxT(t, 10*time.Second), "obj", tc.r, tc.size)
		if !errors.Is(err, ErrChanged) {
			t.Errorf("%s: Put = %v, want ErrChanged", tc.name, err)
		}
		if _, err := s.Stat(ctxT(t, 10*time.Second), "obj"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: after the failed Put, Stat = %v, want ErrNotFound", tc.name, err)
		}
	}
}

func TestPut_TransientErrorIsRetriedOnlyWhenTheSourceCanBeReread(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	p := newFaultProxy(t, gw)
	s := openS3(t, p.URL(), bucket, "p", testOptions())
	data := pattern(200<<10, 4)

	p.Add(rule{Method: "PUT", Fault: fault500, Times: 1})
	if _, err := s.Put(ctxT(t, 10*time.Second), "a", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put from a ReaderAt through one 500: %v", err)
	}
	if puts := p.Requests("PUT", "/a"); len(puts) != 2 {
		t.Errorf("PUTs %v, want 2", puts)
	}
	var buf bytes.Buffer
	if _, _, err := s.Copy(ctxT(t, 10*time.Second), "a", &buf, Want{Size: -1}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("the retried Put stored other bytes (%v)", err)
	}

	p.Add(rule{Method: "PUT", Fault: faultSlowDown, Times: 1})
	_, err := s.Put(ctxT(t, 10*time.Second), "b", io.MultiReader(bytes.NewReader(data)), int64(len(data)))
	if err == nil {
		t.Fatal("Put from a plain reader through a 503 succeeded; it cannot be retried")
	}
	if puts := p.Requests("PUT", "/b"); len(puts) != 1 {
		t.Errorf("PUTs %v, want 1", puts)
	}
	checkMessage(t, err, "SlowDown")

	p.Add(rule{Method: "PUT", Fault: fault403, Times: -1})
	_, err = s.Put(ctxT(t, 10*time.Second), "c", bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Put through a 403 = %v, want ErrAccessDenied", err)
	}
	if puts := p.Requests("PUT", "/c"); len(puts) != 1 {
		t.Errorf("PUTs %v, want 1 (403 is not retried)", puts)
	}
}
