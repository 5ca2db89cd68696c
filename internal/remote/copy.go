package remote

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
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
// Each GET's body is streamed into w through one small buffer (256 KiB,
// pooled): an object up to Options.GetSize is read with one GET, a larger
// one in ranges of GetSize, one after the other. Memory is that buffer
// whatever the object's size. A transient failure (5xx, throttling,
// reset, timeout, short body, stall) is retried with backoff, up to
// Options.RetryAttempts times per range and within the call's
// Options.RetryBudget, by a ranged GET from the first byte not yet
// written, with the same If-Match: the bytes already in w stay, and the
// crc32c continues over them. Never retried: ErrAccessDenied,
// ErrNotFound, ErrChanged, ErrChecksum, an error of w.
//
// Every byte reaches w from a response whose size and ETag (or, without
// one, modification time) were checked, at its offset in the object
// (the Content-Range was checked): w may thus hold bytes of an attempt
// that later failed, but they are the object's bytes at those offsets,
// of the version the first response showed. An object that changed
// between attempts fails the next one (ErrChanged; If-Match on S3), so
// the bytes of two versions are never mixed where the ETag is checked;
// elsewhere the size and modification time are, and want.CRC32C is what
// proves the bytes (see the package's caveats).
//
// On error, w holds a prefix of the object, whose length and crc32c Copy
// returns; the caller discards it or keeps it as a resume point (Want's
// Offset and PrefixCRC), and a retry of Copy is safe. The crc32c is
// checked against want.CRC32C after the last byte (ErrChecksum): w then
// holds all the bad bytes. No more than Size+1 bytes are read (the one
// extra proves the object is no longer). Copy returns within a chunk's
// read or write of ctx being done.
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
	c := &cursor{key: key, w: w, pos: max(want.Offset, 0), crc: want.PrefixCRC}
	err := s.copyRanges(ctx, c, want)
	if err != nil {
		return c.written, c.crc, s.fail("get", url, err, ErrChanged)
	}
	if want.CheckCRC && c.crc != want.CRC32C {
		return c.written, c.crc, newError(s.red, "get", url, ErrChecksum,
			fmt.Errorf("crc32c of the %d bytes read is %08x, want %08x", c.written, c.crc, want.CRC32C))
	}
	return c.written, c.crc, nil
}

// cursor is where a Copy is: the next byte of the object to write, and
// what was written so far.
type cursor struct {
	key     string
	w       io.Writer
	pos     int64  // the object's offset of the next byte w gets
	crc     uint32 // crc32c of the object's bytes before pos
	written int64  // bytes written to w by this Copy
}

// copyRanges reads the object from c.pos to its end, range after range,
// each retried from where its last attempt stopped.
func (s *Store) copyRanges(ctx context.Context, c *cursor, want Want) error {
	buf := s.getBuf()
	defer s.putBuf(buf)
	b := newBudget(s.opts.RetryBudget)
	for {
		start, end := c.pos, min(c.pos+s.opts.GetSize, want.Size)
		_, err := retry(ctx, s, b, func(ctx context.Context) (struct{}, error) {
			if c.pos == end && end > start {
				// An attempt wrote the range's last byte, then failed
				// (reading past the end of a chunked body): the range
				// is in, from a checked response. Asking for the rest
				// would ask from the object's end (416: "changed").
				return struct{}{}, nil
			}
			from := c.pos
			err := s.stream(ctx, c, want, end, buf)
			if err != nil && c.pos-from >= chunkSize {
				err = &progressError{err}
			}
			return struct{}{}, err
		})
		if err != nil {
			return err
		}
		if end == want.Size {
			return nil
		}
	}
}

// progressError is a failed attempt of Copy that passed at least
// chunkSize bytes on first: retry does not count it against the attempts
// or the budget (a link that drops every few MiB must not fail a 64 MiB
// GET that ranges of a few MiB would complete); the copy is bounded by
// the object's size, each such attempt moving it forward by a buffer.
type progressError struct{ err error }

func (e *progressError) Error() string { return e.err.Error() }
func (e *progressError) Unwrap() error { return e.err }

// writeError is an error of Copy's writer: not the store's, never retried.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// stream is one attempt at bytes [c.pos, end) of the object, written to
// c.w as they arrive (c advances with them); the range that ends at the
// object's end is asked for to the end, and one byte past it must not
// come. It fails as stalled (errStall) if no byte arrives for
// IdleTimeout; the watchdog is paused while w writes and while the rate
// limiter holds the transfer back.
func (s *Store) stream(ctx context.Context, c *cursor, want Want, end int64, buf []byte) error {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	wd := newWatchdog(s.opts.IdleTimeout, cancel)
	defer wd.stop()
	off := c.pos
	err := s.streamOnce(ctx, actx, c, want, end, buf, wd)
	if err != nil && wd.fired() && ctx.Err() == nil {
		if _, ok := errors.AsType[*writeError](err); !ok {
			return fmt.Errorf("bytes %d-%d: %d bytes arrived, then none: %w", off, end-1, c.pos-off, errStall)
		}
	}
	return err
}

// streamOnce is stream's request: actx is the attempt's context (the
// watchdog cancels it), ctx the caller's, which w's writes honour.
func (s *Store) streamOnce(ctx, actx context.Context, c *cursor, want Want, end int64, buf []byte, wd *watchdog) error {
	off := c.pos
	last := end == want.Size
	length := end - off
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
	r, err := s.bucket.NewRangeReader(actx, c.key, off, length, ropts)
	if err != nil {
		return err
	}
	defer r.Close()
	wd.kick()
	if err := s.check(r, want, off, end-off, last); err != nil {
		return err
	}
	for c.pos < end {
		m, err := r.Read(buf[:min(int64(len(buf)), end-c.pos)])
		if m > 0 {
			wd.kick()
			if werr := s.wait(actx, wd, m); werr != nil {
				return werr
			}
			if werr := c.write(ctx, buf[:m], s.opts.Progress, wd); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) { // the connection closed before Content-Length
			return fmt.Errorf("bytes %d-%d: %d bytes arrived, then the connection closed: %w", off, end-1, c.pos-off, errShort)
		}
		if err != nil {
			return sdkChecksum(err)
		}
	}
	if c.pos < end {
		return fmt.Errorf("bytes %d-%d: %d bytes arrived: %w", off, end-1, c.pos-off, errShort)
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

// write passes p, the object's bytes at c.pos, to c.w in order, and
// advances c; the watchdog is paused meanwhile (a slow disk is not a
// stalled server). An error of w is a *writeError.
func (c *cursor) write(ctx context.Context, p []byte, progress func(string, int64), wd *watchdog) error {
	wd.stop()
	defer wd.kick()
	for len(p) > 0 {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		m, err := c.w.Write(p)
		c.crc = crc32.Update(c.crc, castagnoli, p[:m])
		c.pos += int64(m)
		c.written += int64(m)
		if m > 0 && progress != nil {
			progress(c.key, int64(m))
		}
		if err != nil {
			return &writeError{err}
		}
		if m == 0 {
			return &writeError{io.ErrShortWrite}
		}
		p = p[m:]
	}
	return nil
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

// getBuf returns a buffer of chunkSize bytes from the Store's pool.
func (s *Store) getBuf() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, chunkSize)
}

// putBuf gives a buffer of getBuf back to the pool.
func (s *Store) putBuf(b []byte) { s.bufs.Put(&b) }
