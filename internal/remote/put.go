package remote

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"gocloud.dev/blob"
)

// Put writes size bytes from r to key, replacing any object there, and
// returns their crc32c. Objects larger than the upload threshold (16 MiB
// with S3's transfer manager) go in multipart uploads of
// max(Options.PartSize, 5 MiB), Options.Concurrency parts at a time.
//
// The object appears whole or not at all: a failed or cancelled Put
// aborts the upload and leaves the key as it was (S3 may keep the parts of
// an aborted multipart upload until a lifecycle rule removes them). If r
// is an io.ReaderAt (an *os.File), a transient error retries the whole
// upload from byte 0, within the retry options; any other reader is
// tried once. r giving more or fewer than size bytes is ErrChanged, and
// nothing is written. Options.Progress counts the bytes taken from r, again
// on a retry.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (uint32, error) {
	return s.put(ctx, key, r, size, false)
}

// PutIfAbsent is Put that never replaces an object: on S3 it sends
// If-None-Match: * with the PutObject or CompleteMultipartUpload, and the
// server refuses the write atomically if the key exists (ErrExists); on
// file:// and the other drivers gocloud.dev does the same where the
// service can. The existing object is untouched.
//
// Caveat: if an attempt's answer is lost (a reset after the server
// committed the object) and the retry gets ErrExists, the object may be
// the one this call wrote. A backup writes each object under a new prefix,
// so it can Stat the key and compare the size, and writes its manifest
// last.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (uint32, error) {
	return s.put(ctx, key, r, size, true)
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64, ifAbsent bool) (uint32, error) {
	url := s.base + key
	ra, rewindable := r.(io.ReaderAt)
	attempt := func(ctx context.Context) (uint32, error) {
		body := r
		if rewindable {
			body = io.NewSectionReader(ra, 0, size+1) // +1: a longer source is seen
		}
		return s.putOnce(ctx, key, body, size, ifAbsent)
	}
	var crc uint32
	var err error
	if rewindable {
		crc, err = retry(ctx, s, newBudget(s.opts.RetryBudget), attempt)
	} else {
		crc, err = attempt(ctx)
	}
	if err != nil {
		return 0, s.fail("put", url, err, ErrExists)
	}
	return crc, nil
}

// errSourceSize is a reader that did not give the size it was announced
// with.
type errSourceSize struct{ got, want int64 }

func (e errSourceSize) Error() string {
	return fmt.Sprintf("the source gave %d bytes, expected %d", e.got, e.want)
}
func (e errSourceSize) Unwrap() error { return ErrChanged }

func (s *Store) putOnce(ctx context.Context, key string, body io.Reader, size int64, ifAbsent bool) (uint32, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watchdog runs while the uploader takes bytes from the source:
	// when the uploads stall, it stops taking them. After the last byte,
	// each request is bounded by the HTTP client's timeouts only.
	wd := newWatchdog(s.opts.IdleTimeout, cancel)
	defer wd.stop()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType:    "application/octet-stream",
		BufferSize:     int(max(s.opts.PartSize, minUploadPartSize)),
		MaxConcurrency: s.opts.Concurrency,
		IfNotExist:     ifAbsent,
	})
	if err != nil {
		return 0, err
	}
	crc := crc32.New(castagnoli)
	src := &meter{ctx: ctx, s: s, key: key, r: io.LimitReader(body, size+1), crc: crc, wd: wd}
	n, err := io.Copy(w, src)
	wd.stop()
	if err != nil && wd.fired() {
		err = fmt.Errorf("upload: %w", errStall)
	}
	if err == nil && n != size {
		err = errSourceSize{got: n, want: size}
	}
	if err != nil {
		cancel() // gocloud.dev: a writer whose context is done before Close aborts
		_ = w.Close()
		if src.err != nil { // the source failed: not the server's fault
			return 0, fmt.Errorf("read source: %w", src.err)
		}
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return crc.Sum32(), nil
}

// meter passes a source through the checksum, the rate limiter and the
// progress callback, and remembers the source's own error.
type meter struct {
	ctx context.Context
	s   *Store
	key string
	r   io.Reader
	crc hash.Hash32
	wd  *watchdog
	err error
}

func (m *meter) Read(p []byte) (int, error) {
	if len(p) > chunkSize {
		p = p[:chunkSize]
	}
	n, err := m.r.Read(p)
	if n > 0 {
		m.wd.kick()
		m.crc.Write(p[:n])
		if werr := m.s.wait(m.ctx, m.wd, n); werr != nil {
			return n, werr
		}
		if m.s.opts.Progress != nil {
			m.s.opts.Progress(m.key, int64(n))
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		m.err = err
	}
	return n, err
}
