package remote

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A server that sends a ranged body chunked (no Content-Length) and
// drops the connection after the range's last byte, before the chunked
// body's end: every byte of the range arrived, and the read of the one
// byte past the object's end fails (a connection error, transient).
// The retry must not ask for bytes from the object's end on (416, taken
// for an object that shrank: ErrChanged, a false "changed" that fails
// the restore as bad input): the range is complete.
func TestCopy_RangeCompleteBeforeTheConnectionDropped(t *testing.T) {
	const g = 64 << 10
	data := pattern(2*g, 21)
	const etag = `"e1"`
	mod := time.Now().UTC().Truncate(time.Second)
	var mu sync.Mutex
	var gets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/p/obj") {
			w.WriteHeader(http.StatusOK)
			return
		}
		rg := r.Header.Get("Range")
		mu.Lock()
		gets = append(gets, rg)
		mu.Unlock()
		var start, end int
		if _, err := fmt.Sscanf(rg, "bytes=%d-%d", &start, &end); err != nil {
			if _, err := fmt.Sscanf(rg, "bytes=%d-", &start); err != nil {
				start = 0
			}
			end = len(data) - 1
		}
		if start >= len(data) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>`)
			return
		}
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Last-Modified", mod.Format(http.TimeFormat))
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
		if end < len(data)-1 || start == 0 {
			h.Set("Content-Length", fmt.Sprint(end-start+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[start : end+1])
			return
		}
		// The last range: chunked, cut before the final chunk.
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 206 Partial Content\r\nETag: %s\r\nLast-Modified: %s\r\nContent-Range: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
			etag, mod.Format(http.TimeFormat), h.Get("Content-Range"))
		body := data[start : end+1]
		fmt.Fprintf(bw, "%x\r\n", len(body))
		bw.Write(body)
		bw.WriteString("\r\n")
		bw.Flush()
	}))
	t.Cleanup(srv.Close)
	awsEnv(t)
	o := testOptions()
	o.GetSize = g
	s := openS3(t, srv.URL, "bkt", "p", o)
	want := Want{Size: int64(len(data)), ETag: etag, CRC32C: crc32.Checksum(data, castagnoli), CheckCRC: true}
	var buf bytes.Buffer
	n, crc, err := s.Copy(ctxT(t, 20*time.Second), "obj", &buf, want)
	mu.Lock()
	defer mu.Unlock()
	if err != nil || n != int64(len(data)) || crc != want.CRC32C || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Copy = %d, %08x, %v (GETs %q); want %d bytes, %08x", n, crc, err, gets, len(data), want.CRC32C)
	}
}
