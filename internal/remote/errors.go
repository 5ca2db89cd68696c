package remote

import (
	"errors"
	"strings"
)

// ErrBadURL is returned by Open when the URL cannot be parsed, has a scheme
// other than s3, gs, azblob or file, names no bucket, or carries a query
// parameter that is unknown or has a bad value. Nothing was contacted.
var ErrBadURL = errors.New("bad remote URL")

// ErrConfig is returned by Open when the AWS configuration (environment,
// AWS_PROFILE, shared config and credentials files) cannot be loaded, or a
// driver cannot be set up from it.
var ErrConfig = errors.New("remote configuration")

// ErrNotFound is returned when the bucket does not exist (Open, List), when
// nothing is stored under the prefix (List), or when an object is missing
// (Stat, Copy). It is never retried.
var ErrNotFound = errors.New("not found")

// ErrAccessDenied is returned when the server refuses the credentials or the
// request (HTTP 401 or 403: a wrong key or secret, an expired token, a
// missing permission), or when no credentials can be found. It is never
// retried.
var ErrAccessDenied = errors.New("access denied")

// ErrChanged is returned by Copy when the object is not the one the caller
// expected (Want): its size, ETag or modification time differ, the server
// refused the If-Match precondition (HTTP 412), or it holds more than the
// expected size. Put returns it when the reader gives more or fewer bytes
// than the size it was given. It is never retried: the caller must list
// again.
var ErrChanged = errors.New("object changed")

// ErrTruncated is returned by Copy when a body kept ending before the
// bytes asked for, after the retries. No byte of a short body is ever
// passed to the writer.
var ErrTruncated = errors.New("truncated body")

// ErrStalled is returned when no byte arrived from the server for
// Options.IdleTimeout, on every attempt the retries allowed.
var ErrStalled = errors.New("transfer stalled")

// ErrChecksum is returned by Copy when the crc32c of the bytes read differs
// from Want.CRC32C (or the SDK's own response checksum does not match). It
// is never retried: the stored object is not the one the caller expects.
var ErrChecksum = errors.New("checksum mismatch")

// ErrExists is returned by PutIfAbsent when an object already exists at the
// key (S3: HTTP 412 to If-None-Match: *). The existing object is untouched.
var ErrExists = errors.New("object already exists")

// ErrRetriesExhausted is returned, beside the last error's own kind, when a
// transient error (5xx, throttling, reset, timeout, short body) persisted
// through Options.RetryAttempts attempts of one request or the call's
// Options.RetryBudget.
var ErrRetriesExhausted = errors.New("retries exhausted")

// Error is the error of every Store operation: the operation, the store URL
// and key (never with a secret), the sentinel it matches (Kind, may be nil)
// and the cause. Its message is one line and has every known secret
// replaced by "REDACTED"; errors.Is matches Kind and the cause's chain.
type Error struct {
	Op   string // "open", "list", "stat", "get", "put"
	URL  string // the store URL with the key, secrets removed
	Kind error  // one of the sentinels above, or nil
	Err  error  // the cause; its message is redacted in Error()

	msg string
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the kind and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// newError builds the one-line message once, with secrets redacted.
func newError(red *redactor, op, url string, kind, err error) *Error {
	var b strings.Builder
	b.WriteString("remote: ")
	b.WriteString(op)
	b.WriteString(" ")
	b.WriteString(url)
	b.WriteString(": ")
	if kind != nil {
		b.WriteString(kind.Error())
	}
	if err != nil && err != kind {
		if kind != nil {
			b.WriteString(": ")
		}
		b.WriteString(err.Error())
	}
	return &Error{Op: op, URL: url, Kind: kind, Err: err, msg: red.redact(oneLine(b.String()))}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
