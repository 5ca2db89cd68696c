package remote

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// castagnoli is the crc32c table, the checksum of kvrflow's manifests.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Want is what Copy expects of an object, usually Object.Want() of a List
// entry, with the manifest's checksum added. A difference is ErrChanged
// (or ErrChecksum for the checksum).
type Want struct {
	// Size is the object's size in bytes. Copy reads no more than Size+1
	// bytes (the one extra proves the object is no longer). Negative:
	// unknown, and Copy asks the server first (Stat).
	Size int64
	// ETag, if set and the store is S3, goes with every GET as If-Match,
	// and the response's ETag must be it.
	ETag string
	// ModTime, if set and there is no ETag to check, must be the
	// response's modification time (to the second).
	ModTime time.Time
	// CRC32C is the crc32c (Castagnoli) the bytes must have, checked when
	// CheckCRC is set.
	CRC32C   uint32
	CheckCRC bool
	// Offset, if above 0, starts the copy at that byte (a resumed
	// transfer): w gets bytes [Offset, Size), the count returned is of
	// those, and the crc32c returned continues from PrefixCRC, the
	// crc32c of the first Offset bytes, so it is the whole object's (and
	// CheckCRC checks the whole object). Offset must be below Size.
	Offset    int64
	PrefixCRC uint32
}

// Copy reads the object at key into w, in order, and returns the number of
// bytes written and their crc32c, computed as they arrive.
//
// An object larger than Options.PartSize is read in ranged parts,
// Options.Concurrency at a time, each into its own buffer, and written in
// order: at most Concurrency+1 buffers of PartSize exist at once, whatever
// the object's size. Each part is retried on a transient error (5xx,
// throttling, reset, timeout, short body, stall), with backoff, up to
// Options.RetryAttempts times and within the call's Options.RetryBudget; a
// part's bytes reach w only once the whole part has arrived, so a
// truncated or failed attempt never writes anything. Never retried:
// ErrAccessDenied, ErrNotFound, ErrChanged, ErrChecksum.
//
// On error, w may hold a prefix of the object, never a byte of a failed
// attempt, and the caller must discard it; a retry of Copy is safe. A part
// that fails for good ends the Copy at once, whatever the parts before it. The crc32c is checked against
// want.CRC32C after the last byte (ErrChecksum): w then holds all the bad
// bytes. Copy returns within a chunk's read or write of ctx being done.
func (s *Store) Copy(ctx context.Context, key string, w io.Writer, want Want) (int64, uint32, error) {
	url := s.base + key
	if want.Size < 0 {
		o, err := s.Stat(ctx, key)
		if err != nil {
			return 0, 0, err
		}
		want.Size, want.ETag, want.ModTime = o.Size, o.ETag, o.ModTime
	}
	if want.Offset < 0 || want.Offset > 0 && want.Offset >= want.Size {
		return 0, want.PrefixCRC, newError(s.red, "get", url, ErrChanged,
			fmt.Errorf("a copy from byte %d of a %d-byte object", want.Offset, want.Size))
	}
	n, crc, err := s.copyParts(ctx, key, w, want)
	if err != nil {
		return n, crc, s.fail("get", url, err, ErrChanged)
	}
	if want.CheckCRC && crc != want.CRC32C {
		return n, crc, newError(s.red, "get", url, ErrChecksum,
			fmt.Errorf("crc32c of the %d bytes read is %08x, want %08x", n, crc, want.CRC32C))
	}
	return n, crc, nil
}

// part is one ranged read of the pipeline.
type part struct {
	idx    int
	off, n int64
	buf    []byte
	err    error
}

func (s *Store) copyParts(ctx context.Context, key string, w io.Writer, want Want) (int64, uint32, error) {
	ps := s.opts.PartSize
	start := max(want.Offset, 0)
	rem := want.Size - start
	nparts := int(max(1, (rem+ps-1)/ps))
	workers := min(s.opts.Concurrency, nparts)
	bufSize := min(ps, rem)
	nbuf := min(workers+1, nparts)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	free := make(chan []byte, nbuf)
	defer func() {
		cancel()
		wg.Wait() // no goroutine outlives Copy
		// The buffers no part holds go back to the Store's pool: the next
		// Copy reuses them rather than leave them to the collector (a
		// restore's heap stays near its live buffers).
		for {
			select {
			case buf := <-free:
				s.putPart(buf)
			default:
				return
			}
		}
	}()
	for range nbuf {
		free <- nil // allocated on first use
	}
	jobs := make(chan *part)
	done := make(chan *part, nbuf)
	b := newBudget(s.opts.RetryBudget)
	wg.Go(func() { // the dispatcher: a buffer first, then the next part
		defer close(jobs)
		for i := range nparts {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			off := start + int64(i)*ps
			p := &part{idx: i, off: off, n: min(ps, want.Size-off), buf: buf}
			select {
			case jobs <- p:
			case <-ctx.Done():
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for p := range jobs {
				if p.buf == nil {
					p.buf = s.getPart(bufSize)
				}
				last := p.idx == nparts-1
				_, p.err = retry(ctx, s, b, func(ctx context.Context) (struct{}, error) {
					return struct{}{}, s.fetch(ctx, key, want, p.off, p.n, last, p.buf[:p.n])
				})
				select {
				case done <- p:
				case <-ctx.Done():
					return
				}
			}
		})
	}

	crc := want.PrefixCRC // continued: the whole object's when Offset > 0
	var written int64
	pending := make(map[int]*part, nbuf)
	for next := 0; next < nparts; {
		select {
		case p := <-done:
			if p.err != nil { // fail now, not once the parts before it are in
				return written, crc, p.err
			}
			pending[p.idx] = p
		case <-ctx.Done():
			return written, crc, context.Cause(ctx)
		}
		for p := pending[next]; p != nil; p = pending[next] {
			for data := p.buf[:p.n]; len(data) > 0; {
				if err := ctx.Err(); err != nil {
					return written, crc, err
				}
				chunk := data[:min(len(data), chunkSize)]
				m, err := w.Write(chunk)
				crc = crc32.Update(crc, castagnoli, chunk[:m])
				written += int64(m)
				if m > 0 && s.opts.Progress != nil {
					s.opts.Progress(key, int64(m))
				}
				if err != nil {
					return written, crc, fmt.Errorf("write: %w", err)
				}
				data = data[m:]
			}
			delete(pending, next)
			free <- p.buf
			next++
		}
	}
	return written, crc, nil
}

// fetch reads bytes [off, off+len(buf)) of key into buf: one attempt,
// failed as stalled (errStall) if no byte arrives for IdleTimeout.
func (s *Store) fetch(ctx context.Context, key string, want Want, off, n int64, last bool, buf []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wd := newWatchdog(s.opts.IdleTimeout, cancel)
	defer wd.stop()
	err := s.fetchOnce(ctx, key, want, off, n, last, buf, wd)
	if err != nil && wd.fired() {
		return fmt.Errorf("bytes %d-%d: %w", off, off+n-1, errStall)
	}
	return err
}

// watchdog cancels an attempt when it is not kicked for idle; it is
// paused while the rate limiter holds the transfer back.
type watchdog struct {
	idle  time.Duration
	timer *time.Timer
	fire  atomic.Bool
}

func newWatchdog(idle time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{idle: idle}
	w.timer = time.AfterFunc(idle, func() { w.fire.Store(true); cancel() })
	return w
}

func (w *watchdog) kick()       { w.timer.Reset(w.idle) }
func (w *watchdog) stop()       { w.timer.Stop() }
func (w *watchdog) fired() bool { return w.fire.Load() }

// wait takes n bytes from the rate limiter, if any, the watchdog paused.
func (s *Store) wait(ctx context.Context, wd *watchdog, n int) error {
	if s.limiter == nil {
		return nil
	}
	wd.stop()
	defer wd.kick()
	return s.limiter.WaitN(ctx, n)
}

func (s *Store) fetchOnce(ctx context.Context, key string, want Want, off, n int64, last bool, buf []byte, wd *watchdog) error {
	length := n
	if last {
		length = -1 // to the end: one byte more than expected proves a longer object
	}
	var ropts *blob.ReaderOptions
	if s.s3 && want.ETag != "" {
		etag := want.ETag
		ropts = &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
			var in *s3.GetObjectInput
			if as(&in) {
				in.IfMatch = aws.String(etag)
			}
			return nil
		}}
	}
	r, err := s.bucket.NewRangeReader(ctx, key, off, length, ropts)
	if err != nil {
		return err
	}
	defer r.Close()
	wd.kick()
	if err := s.check(r, want, off, n, last); err != nil {
		return err
	}
	got := int64(0)
	for got < n {
		m, err := r.Read(buf[got:min(got+chunkSize, n)])
		if m > 0 {
			wd.kick()
			got += int64(m)
			if werr := s.wait(ctx, wd, m); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) { // the connection closed before Content-Length
			return fmt.Errorf("bytes %d-%d: %d bytes arrived, then the connection closed: %w", off, off+n-1, got, errShort)
		}
		if err != nil {
			return sdkChecksum(err)
		}
	}
	if got < n {
		return fmt.Errorf("bytes %d-%d: %d bytes arrived: %w", off, off+n-1, got, errShort)
	}
	if last {
		var one [1]byte
		m, err := io.ReadFull(r, one[:])
		if m > 0 {
			return fmt.Errorf("holds more than the %d bytes expected: %w", want.Size, ErrChanged)
		}
		if err != nil && err != io.EOF {
			return sdkChecksum(err)
		}
	}
	return nil
}

// check compares a response with what the caller expects: the object's
// size, ETag or time and, on S3, that the server sent the range asked for
// (a server that ignores Range answers 200 with the whole object, whose
// bytes would land at the wrong offset).
func (s *Store) check(r *blob.Reader, want Want, off, n int64, last bool) error {
	if size := r.Size(); size != want.Size {
		return fmt.Errorf("size is %d, expected %d: %w", size, want.Size, ErrChanged)
	}
	if s.s3 {
		var out s3.GetObjectOutput
		if !r.As(&out) {
			return fmt.Errorf("no S3 response to check")
		}
		if ranged := off > 0 || !last; ranged {
			cr := aws.ToString(out.ContentRange)
			var start, end, total int64
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &total); err != nil ||
				start != off || (!last && end != off+n-1) {
				return fmt.Errorf("asked for bytes %d-%d, the server sent Content-Range %q", off, off+n-1, cr)
			}
		}
		if want.ETag != "" && out.ETag != nil && *out.ETag != want.ETag {
			return fmt.Errorf("ETag is %s, expected %s: %w", *out.ETag, want.ETag, ErrChanged)
		}
		if want.ETag != "" {
			return nil
		}
	}
	if mt := r.ModTime(); !want.ModTime.IsZero() && !mt.IsZero() &&
		!mt.Truncate(time.Second).Equal(want.ModTime.Truncate(time.Second)) {
		return fmt.Errorf("modified %s, expected %s: %w", mt.UTC().Format(time.RFC3339), want.ModTime.UTC().Format(time.RFC3339), ErrChanged)
	}
	return nil
}

// sdkChecksum marks the AWS SDK's own response checksum failure (a full
// GET whose x-amz-checksum-* does not match the body) as ErrChecksum. The
// SDK's error type is unexported (service/internal/checksum
// validationError), so its message is the only handle.
func sdkChecksum(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "checksum did not match"); i >= 0 {
		return &described{msg: "response " + msg[i:], err: &kindError{ErrChecksum, err}}
	}
	return err
}

// kindError adds a sentinel to an error's chain.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// getPart returns a buffer of n bytes: one of PartSize from the Store's
// pool if n is PartSize, else a new one.
func (s *Store) getPart(n int64) []byte {
	if n == s.opts.PartSize {
		if b, ok := s.parts.Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, n)
}

// putPart gives a buffer of PartSize back to the pool (others are left to
// the collector).
func (s *Store) putPart(b []byte) {
	if int64(len(b)) == s.opts.PartSize {
		s.parts.Put(&b)
	}
}
