package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cenkalti/backoff/v5"
	"gocloud.dev/gcerrors"
)

// errShort is an attempt's body that ended before the bytes asked for
// (transient: retried, then ErrTruncated).
var errShort = fmt.Errorf("body ended early: %w", ErrTruncated)

// errStall is an attempt that received no byte for IdleTimeout.
var errStall = fmt.Errorf("no byte received within the idle timeout: %w", ErrStalled)

// budget is the retries one call may still make, over all its parts.
type budget struct{ left atomic.Int64 }

func newBudget(n int) *budget {
	b := &budget{}
	b.left.Store(int64(n))
	return b
}

func (b *budget) take() bool { return b.left.Add(-1) >= 0 }

// exhaustedError is a transient error that outlived the retries.
type exhaustedError struct {
	err      error
	attempts int
	budget   bool // the call's budget ran out, not the request's attempts
}

func (e *exhaustedError) Error() string {
	if e.budget {
		return fmt.Sprintf("retry budget spent after %d attempts: %v", e.attempts, e.err)
	}
	return fmt.Sprintf("after %d attempts: %v", e.attempts, e.err)
}

func (e *exhaustedError) Unwrap() []error { return []error{ErrRetriesExhausted, e.err} }

// retry runs op until it succeeds, fails with an error that is not
// transient, has been tried RetryAttempts times, or the call's budget is
// spent; it waits an exponential, randomized backoff between attempts and
// returns at once when ctx is done.
func retry[T any](ctx context.Context, s *Store, b *budget, op func(context.Context) (T, error)) (T, error) {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = s.opts.RetryInitial
	eb.MaxInterval = s.opts.RetryMax
	attempts := 0
	return backoff.Retry(ctx, func() (T, error) {
		attempts++
		v, err := op(ctx)
		switch {
		case err == nil:
			return v, nil
		case ctx.Err() != nil:
			return v, backoff.Permanent(context.Cause(ctx))
		case !transient(err):
			return v, backoff.Permanent(err)
		case isProgress(err):
			attempts-- // it moved the copy forward: not counted, nor budgeted
			return v, err
		case attempts >= s.opts.RetryAttempts:
			return v, backoff.Permanent(&exhaustedError{err: err, attempts: attempts})
		case !b.take():
			return v, backoff.Permanent(&exhaustedError{err: err, attempts: attempts, budget: true})
		}
		return v, err
	}, backoff.WithBackOff(eb), backoff.WithMaxElapsedTime(0))
}

// isProgress reports whether err is an attempt that made progress (see
// progressError).
func isProgress(err error) bool {
	_, ok := errors.AsType[*progressError](err)
	return ok
}

// transient reports whether err is worth another attempt: a 5xx, a
// throttling answer (503 SlowDown, 429), a request timeout, a connection
// refused, reset or dropped, a network timeout, a short body or a stall.
// Never: 401/403, 404, 412, a checksum mismatch, a changed object, a
// cancelled context.
func transient(err error) bool {
	if _, ok := errors.AsType[*writeError](err); ok {
		return false // the caller's writer, not the store
	}
	switch {
	case err == nil,
		errors.Is(err, ErrChecksum), errors.Is(err, ErrChanged),
		errors.Is(err, ErrAccessDenied), errors.Is(err, ErrNotFound),
		errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrStalled):
		return true
	}
	if st := httpStatus(err); st != 0 {
		return st >= 500 || st == http.StatusTooManyRequests || st == http.StatusRequestTimeout
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
			"Throttling", "ThrottlingException", "RequestLimitExceeded":
			return true
		}
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	// A reset while the request body is being written reaches the writer
	// as "use of closed network connection": the transport closed the
	// connection the server had reset. (A cancelled context is caught
	// above, and by retry before each attempt.)
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	switch gcerrors.Code(err) {
	case gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	return false
}

// httpStatus is the HTTP status of a response error, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	var sc interface{ HTTPStatusCode() int }
	if errors.As(err, &sc) {
		return sc.HTTPStatusCode()
	}
	return 0
}

// kindOf maps err to a sentinel. A 412 is precondition: ErrChanged for a
// read (If-Match), ErrExists for a conditional write.
func kindOf(err error, precondition error) error {
	for _, k := range []error{ErrChecksum, ErrChanged, ErrExists, ErrTruncated, ErrStalled, ErrNotFound, ErrAccessDenied} {
		if errors.Is(err, k) {
			return k
		}
	}
	var se *v4.SigningError
	if errors.As(err, &se) {
		return ErrAccessDenied // no credentials could be retrieved
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
			"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AccountProblem",
			"XAdminUserNotFound": // versitygw's answer (404) to an unknown access key
			return ErrAccessDenied
		case "NoSuchBucket", "NoSuchKey", "NotFound":
			return ErrNotFound
		case "PreconditionFailed":
			return precondition
		case "InvalidRange":
			return ErrChanged // a range past the end: the object shrank
		}
	}
	switch httpStatus(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrAccessDenied
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusPreconditionFailed:
		return precondition
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrChanged
	}
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return ErrNotFound
	case gcerrors.PermissionDenied:
		return ErrAccessDenied
	case gcerrors.FailedPrecondition:
		return precondition
	}
	if errors.Is(err, ErrRetriesExhausted) {
		return ErrRetriesExhausted
	}
	return nil
}

// described is a cause with a short, one-line message: the HTTP status and
// the service's error code and message when there is one, rather than the
// SDK's chain of wrappers.
type described struct {
	msg string
	err error
}

func (d *described) Error() string { return d.msg }
func (d *described) Unwrap() error { return d.err }

func describe(err error) error {
	if ce, ok := errors.AsType[*credentialsError](err); ok {
		return &described{msg: ce.Error(), err: err}
	}
	if ex, ok := errors.AsType[*exhaustedError](err); ok {
		inner := describe(ex.err)
		msg := fmt.Sprintf("after %d attempts: %v", ex.attempts, inner)
		if ex.budget {
			msg = fmt.Sprintf("retry budget spent after %d attempts: %v", ex.attempts, inner)
		}
		return &described{msg: msg, err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := ae.ErrorCode()
		if m := ae.ErrorMessage(); m != "" {
			msg += ": " + m
		}
		if st := httpStatus(err); st != 0 {
			msg = fmt.Sprintf("HTTP %d %s", st, msg)
		}
		return &described{msg: msg, err: err}
	}
	if st := httpStatus(err); st != 0 {
		return &described{msg: fmt.Sprintf("HTTP %d %s", st, http.StatusText(st)), err: err}
	}
	if d, ok := errors.AsType[*described](err); ok {
		return &described{msg: d.msg, err: err}
	}
	var ne *net.OpError
	if errors.As(err, &ne) { // "read tcp A->B: read: connection reset by peer"
		return &described{msg: ne.Error(), err: err}
	}
	return err
}

// fail builds the *Error of operation op on url from err (returned as is
// if it is one already). precondition is the kind of an HTTP 412.
func (s *Store) fail(op, url string, err error, precondition error) error {
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	return newError(s.red, op, url, kindOf(err, precondition), describe(err))
}
