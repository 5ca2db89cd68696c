package remote

import "time"

// Options tune a Store. The zero value is usable: every zero field takes
// the default named beside it.
type Options struct {
	// GetSize is the most bytes one GET of Copy asks for: an object up to
	// GetSize is read with one GET, a larger one in ranges of GetSize,
	// one after the other. Copy streams each body through one buffer of
	// 256 KiB, so GetSize costs no memory; smaller ranges cost the
	// server a request each (and S3 a charge). Default 64 MiB.
	GetSize int64
	// PartSize is the size of one part of a multipart upload by Put (at
	// least 5 MiB, as S3 requires). Default 8 MiB.
	PartSize int64
	// Concurrency is how many parts one Put uploads at once. Default 4.
	// Put's transfer manager holds about Concurrency+1 buffers of
	// PartSize: with the defaults 40 MiB.
	Concurrency int

	// RetryAttempts is how many times one request (one part) is tried
	// when it fails with a transient error. Default 5. An attempt of
	// Copy that passed at least 256 KiB to its writer before it failed
	// is not counted, here or in RetryBudget: it moved the copy forward.
	RetryAttempts int
	// RetryBudget is how many retries one Copy or Put may make in total,
	// over all its parts. Default 20.
	RetryBudget int
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts (randomized). Defaults 200 ms and 10 s.
	RetryInitial, RetryMax time.Duration

	// IdleTimeout fails an attempt (as stalled, a transient error) when no
	// byte of a response arrived for this long, headers included.
	// Default 30 s.
	IdleTimeout time.Duration
	// DialTimeout bounds a TCP connect and TLS handshake (S3). Default 10 s.
	DialTimeout time.Duration

	// RateLimit caps the bytes per second the Store transfers, all Copy
	// and Put calls together. 0: no limit.
	RateLimit int64

	// Progress, if set, is called with the number of bytes Copy has
	// passed to its writer (each byte once: a retry continues after the
	// bytes written), or Put
	// has taken from its reader (again on a retried upload), as they go.
	// Copy calls it from its caller's goroutine, Put from the uploader's;
	// it must be safe for concurrent use if the Store is.
	Progress func(key string, n int64)
}

const (
	defaultGetSize      = 64 << 20
	defaultPartSize     = 8 << 20
	minUploadPartSize   = 5 << 20
	defaultConcurrency  = 4
	defaultAttempts     = 5
	defaultBudget       = 20
	defaultRetryInitial = 200 * time.Millisecond
	defaultRetryMax     = 10 * time.Second
	defaultIdleTimeout  = 30 * time.Second
	defaultDialTimeout  = 10 * time.Second
	chunkSize           = 256 << 10 // Copy's buffer: one read from a body, and the rate limiter's burst
)

func (o Options) withDefaults() Options {
	if o.GetSize <= 0 {
		o.GetSize = defaultGetSize
	}
	if o.PartSize <= 0 {
		o.PartSize = defaultPartSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.RetryAttempts <= 0 {
		o.RetryAttempts = defaultAttempts
	}
	if o.RetryBudget <= 0 {
		o.RetryBudget = defaultBudget
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = defaultRetryInitial
	}
	if o.RetryMax <= 0 {
		o.RetryMax = defaultRetryMax
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	return o
}
