// Package remote reads and writes backups in object storage: S3 and
// S3-compatible servers (s3://BUCKET/PREFIX), and through gocloud.dev also
// Google Cloud Storage (gs://), Azure Blob Storage (azblob://) and a local
// directory (file:///DIR). A Store is one bucket and prefix; keys are
// relative to the prefix.
//
//	s, err := remote.Open(ctx, "s3://backups/db1/2026-11-30", remote.Options{})
//	objs, err := s.List(ctx)                     // every object, paginated
//	n, crc, err := s.Copy(ctx, key, w, want)     // streamed, crc32c, verified
//	crc, err := s.PutIfAbsent(ctx, key, f, size) // never replaces
//
// Configuration is read the way the AWS tools read it (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_S3, AWS_PROFILE, AWS_CA_BUNDLE, the shared config and
// credentials files), overridden by the URL's query parameters as
// gocloud.dev's s3blob documents them (endpoint, use_path_style, region,
// profile, ...). An S3-compatible server on a host of its own is
// s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&use_path_style=true.
//
// Every error is an *Error: the operation, the URL and key, and a
// sentinel (ErrBadURL, ErrConfig, ErrNotFound, ErrAccessDenied,
// ErrChanged, ErrTruncated, ErrStalled, ErrChecksum, ErrExists,
// ErrRetriesExhausted) to match with errors.Is. Its message is one line
// and never holds a credential: every access key, secret and session
// token the Store has used, and any sensitive URL parameter, are replaced
// by REDACTED, also when a server echoes them back.
//
// Copy streams: each GET's body goes into the caller's writer as it
// arrives, through one 256 KiB buffer, so an object up to Options.GetSize
// (64 MiB) is read with one GET and memory does not grow with the size of
// a GET or an object.
//
// Retries are the Store's alone (the AWS SDK's own are off): each request,
// and each range of a Copy, is retried with a randomized exponential
// backoff on a transient error only (HTTP 5xx, 429, 503 SlowDown,
// RequestTimeout, a connection refused, reset or dropped, a network
// timeout, a body that ends early, no byte for Options.IdleTimeout), at
// most Options.RetryAttempts times, and one call retries at most
// Options.RetryBudget times over all its ranges. A retried Copy range asks
// for the bytes from the first one not yet written on. Never retried: 401
// and 403, 404, 412 (the object changed, or exists), a checksum mismatch,
// a changed size, an error of Copy's writer, a cancelled context.
//
// # Crash safety
//
// The package keeps no state of its own, on disk or in the bucket.
//
// Copy writes only into the caller's writer, in order and never twice at
// an offset, and makes nothing durable: the caller syncs and journals as
// for a local copy. On error the writer holds a prefix of the object,
// whose length and crc32c Copy returns; it may include bytes of an
// attempt that failed later (a body cut short, a stall), but every byte
// came from a response whose size and ETag (If-Match on S3) were checked,
// at the offset its Content-Range gave, so they are the listed object's
// bytes at those offsets: a retry continues after them, and the crc32c
// continues over them. An object that changed between two attempts fails
// the second (ErrChanged), so two versions are never mixed where ETags are
// checked. The caller's crc32c (Want.CheckCRC), checked after the last
// byte, proves every byte, those of failed attempts included. Nothing past
// the expected size (plus the one byte that proves the object longer) is
// ever read.
//
// An object written by Put appears whole or not at all: S3's PutObject and
// CompleteMultipartUpload are atomic, and a failed, cancelled or crashed
// Put leaves the key as it was. A crash during a multipart upload leaves
// its parts stored but invisible until the upload is aborted (an S3
// lifecycle rule AbortIncompleteMultipartUpload removes them). A backup is
// therefore complete only once its manifest exists: the writer puts every
// object first (PutIfAbsent, under a new prefix) and the manifest last,
// and a restore reads nothing from a prefix without one.
//
// # Caveats
//
//   - S3 gives read-after-write and list-after-write consistency; an
//     S3-compatible server that does not may list an object before it can be
//     read (ErrNotFound, not retried) or with an older size (ErrChanged).
//   - Changes between List and Copy are caught by the ETag (If-Match) on S3
//     only; elsewhere by the size, the one extra byte and the modification
//     time to the second. A same-size rewrite within that second is not
//     seen there: the caller's crc32c (Want.CheckCRC) is what proves the
//     bytes.
//   - file:// (gocloud.dev's fileblob) writes a temporary file and renames
//     it without fsync: not durable across a power loss. Its PutIfAbsent is
//     a check then a rename, not atomic against another writer. It keeps
//     .attrs sidecar files beside the objects.
//   - gs:// and azblob:// are compiled in but not tested here; retries there
//     see only HTTP statuses and gocloud.dev's ResourceExhausted.
//   - Put retries only from an io.ReaderAt (an *os.File), whole from byte 0.
//     If an answer is lost after the server committed the object, the
//     retried PutIfAbsent gets ErrExists for its own object.
//   - Memory: one Copy holds one 256 KiB buffer (pooled per Store), plus
//     its HTTP connection's; one Put about Options.Concurrency+1 buffers
//     of max(PartSize, 5 MiB) in S3's transfer manager (40 MiB with the
//     defaults). Concurrent calls add up.
//   - Copy reads one object over one connection at a time: a single very
//     large object goes at one stream's speed (a transfer of many objects
//     runs several Copy calls at once).
//   - Copy does not count an attempt that passed at least 256 KiB on
//     before it failed (against RetryAttempts or RetryBudget): a link that
//     breaks every few MiB completes a GetSize range. A server that cuts
//     every body after 256 KiB is thus retried until the object is read,
//     one buffer further each time, with backoff.
//   - Put's idle watchdog runs while the uploader takes bytes from the
//     source; once the last byte is taken, its remaining requests are bounded
//     by the HTTP client's timeouts (connect, and IdleTimeout for the
//     response headers) and the caller's context only.
//   - net/http itself resends an idempotent GET once when a reused
//     connection dies before any answer; an attempt may thus be two requests.
//   - The AWS SDK's own response checksum (full GETs of objects stored with
//     one) has an unexported error type: it is recognised by its message and
//     reported as ErrChecksum.
//   - versitygw answers an unknown access key with 404 XAdminUserNotFound;
//     it is reported as ErrAccessDenied.
package remote
