package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/time/rate"

	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	"gocloud.dev/blob/s3blob"
)

// Store is one bucket and prefix of an object store, opened by Open. Its
// methods are safe for concurrent use. Keys are relative to the prefix.
type Store struct {
	bucket  *blob.Bucket
	s3      bool   // the bucket is S3's: ETags, If-Match
	url     string // the URL as given, secrets removed: String()
	base    string // scheme://bucket/prefix/, to which keys are appended in messages
	opts    Options
	limiter *rate.Limiter // nil: no rate limit
	red     *redactor
	bufs    sync.Pool // *[]byte of chunkSize: Copy's buffers, reused

	closeOnce sync.Once
	closeErr  error
}

// String returns the store's URL with every secret removed.
func (s *Store) String() string { return s.url }

// Close releases the Store's resources. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.bucket.Close() })
	return s.closeErr
}

// s3Params are the query parameters of an s3:// URL: s3blob's own, then
// those gocloud.dev/aws.V2ConfigFromURLParams reads.
var s3Params = map[string]bool{
	"use_path_style": true, "s3ForcePathStyle": true, "disable_https": true,
	"accelerate": true, "ssetype": true, "kmskeyid": true,
	"region": true, "endpoint": true, "profile": true, "hostname_immutable": true,
	"anonymous": true, "dualstack": true, "fips": true, "rate_limiter_capacity": true,
	"role": true, "request_checksum_calculation": true,
	"response_checksum_validation": true, "awssdk": true,
}

// Open opens the object store at rawURL:
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&use_path_style=true&region=R&profile=P...]
//	gs://BUCKET[/PREFIX]  azblob://CONTAINER[/PREFIX]  file:///DIR
//
// For s3:// it reads the configuration the way the AWS tools do:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3, AWS_PROFILE, AWS_CA_BUNDLE and
// the shared config and credentials files; the URL's query parameters
// (those of gocloud.dev's s3blob) take precedence. Credentials in the URL
// itself are refused. gs:// and azblob:// use gocloud.dev's drivers and
// their usual environment (GOOGLE_APPLICATION_CREDENTIALS,
// AZURE_STORAGE_ACCOUNT, ...).
//
// Open checks that the bucket exists and the credentials may list the
// prefix (one request); it does not require the prefix to hold anything.
// Errors: ErrBadURL, ErrConfig, ErrNotFound (no bucket), ErrAccessDenied.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	red := &redactor{}
	red.add(os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the raw URL, which may hold a secret
		}
		return nil, newError(red, "open", stripUserinfo(rawURL), ErrBadURL, err)
	}
	display := safeURL(u)
	bad := func(format string, a ...any) error {
		return newError(red, "open", display, ErrBadURL, fmt.Errorf(format, a...))
	}
	if u.User != nil {
		return nil, bad("credentials in the URL are not accepted (use the AWS_* environment, AWS_PROFILE or the shared files)")
	}
	if u.Opaque != "" {
		return nil, bad("not of the form scheme://bucket/prefix")
	}
	var prefix string
	switch u.Scheme {
	case "s3", "gs", "azblob":
		if u.Host == "" {
			return nil, bad("no bucket (want %s://BUCKET/PREFIX)", u.Scheme)
		}
		prefix = strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
	case "file":
		if u.Host != "" || u.Path == "" {
			return nil, bad("want file:///ABSOLUTE/DIR")
		}
	case "":
		return nil, bad("no scheme (want s3://, gs://, azblob:// or file://)")
	default:
		return nil, bad("unsupported scheme %q (want s3, gs, azblob or file)", u.Scheme)
	}

	opts = opts.withDefaults()
	s := &Store{url: display, opts: opts, red: red, s3: u.Scheme == "s3"}
	s.base = u.Scheme + "://" + u.Host + "/" + prefix
	if u.Scheme == "file" {
		s.base = "file://" + strings.TrimSuffix(u.Path, "/") + "/"
	}
	if opts.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), chunkSize)
	}

	var b *blob.Bucket
	if s.s3 {
		if b, err = s.openS3(ctx, u); err != nil {
			return nil, err
		}
	} else {
		c := *u
		c.Path = "/"
		if u.Scheme == "file" {
			c.Path = u.Path
			if fi, err := os.Stat(u.Path); err != nil || !fi.IsDir() {
				if err == nil {
					err = fmt.Errorf("%s is not a directory", u.Path)
				}
				return nil, newError(red, "open", display, ErrNotFound, err)
			}
		}
		if b, err = blob.OpenBucket(ctx, c.String()); err != nil {
			return nil, newError(red, "open", display, ErrConfig, err)
		}
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix)
	}
	s.bucket = b
	if err := s.probe(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return s, nil
}

// openS3 builds the S3 client: the AWS configuration with the URL's
// parameters, no SDK retries (the Store retries, once, with its own
// budget), the dial and header timeouts, and credentials recorded for
// redaction.
func (s *Store) openS3(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	rest := url.Values{}
	var s3opts []func(*s3.Options)
	var bopts s3blob.Options
	for name, vals := range q {
		if !s3Params[name] {
			return nil, newError(s.red, "open", s.url, ErrBadURL, fmt.Errorf("unknown query parameter %q", name))
		}
		v := vals[0]
		if err := checkS3Param(name, v); err != nil {
			return nil, newError(s.red, "open", s.url, ErrBadURL, err)
		}
		boolean, _ := strconv.ParseBool(v)
		switch name {
		case "use_path_style", "s3ForcePathStyle":
			s3opts = append(s3opts, func(o *s3.Options) { o.UsePathStyle = boolean })
		case "disable_https":
			s3opts = append(s3opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = boolean })
		case "accelerate":
			s3opts = append(s3opts, func(o *s3.Options) { o.UseAccelerate = boolean })
		case "ssetype":
			ok := false
			for _, t := range types.ServerSideEncryptionAes256.Values() {
				if strings.EqualFold(string(t), v) {
					bopts.EncryptionType, ok = t, true
				}
			}
			if !ok {
				return nil, newError(s.red, "open", s.url, ErrBadURL, fmt.Errorf("query parameter ssetype=%q is not one of %v", v, types.ServerSideEncryptionAes256.Values()))
			}
		case "kmskeyid":
			bopts.KMSEncryptionID = v
		case "endpoint":
			if e, err := url.Parse(v); err != nil || e.Scheme == "" || e.Host == "" {
				return nil, newError(s.red, "open", s.url, ErrBadURL, fmt.Errorf("query parameter endpoint=%q is not an absolute URL", v))
			}
			rest[name] = vals
		default:
			rest[name] = vals
		}
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, rest)
	if err != nil { // the values were checked: the configuration itself failed
		return nil, newError(s.red, "open", s.url, ErrConfig, err)
	}
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	if cfg.Credentials != nil {
		cfg.Credentials = recordingProvider{inner: cfg.Credentials, red: s.red}
	}
	dial, idle := s.opts.DialTimeout, s.opts.IdleTimeout
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		// Keep the SDK's client (AWS_CA_BUNDLE is already in its TLS
		// configuration); bound the connect, the handshake and the wait
		// for headers.
		cfg.HTTPClient = bc.WithDialerOptions(func(d *net.Dialer) { d.Timeout = dial }).
			WithTransportOptions(func(t *http.Transport) {
				t.TLSHandshakeTimeout = dial
				t.ResponseHeaderTimeout = idle
				t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, 2*s.opts.Concurrency)
			})
	}
	client := s3.NewFromConfig(cfg, s3opts...)
	bopts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	b, err := s3blob.OpenBucket(ctx, client, u.Host, &bopts)
	if err != nil {
		return nil, newError(s.red, "open", s.url, ErrConfig, err)
	}
	return b, nil
}

// checkS3Param checks the value of a query parameter, so that a bad one is
// ErrBadURL before gocloud.dev reads the AWS configuration.
func checkS3Param(name, v string) error {
	switch name {
	case "use_path_style", "s3ForcePathStyle", "disable_https", "accelerate",
		"hostname_immutable", "anonymous", "dualstack", "fips":
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("query parameter %s=%q is not a boolean", name, v)
		}
	case "rate_limiter_capacity":
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			return fmt.Errorf("query parameter %s=%q is not an integer", name, v)
		}
	case "role":
		if !strings.HasPrefix(v, "arn:") {
			return fmt.Errorf("query parameter role=%q is not an ARN", v)
		}
	case "request_checksum_calculation", "response_checksum_validation":
		if l := strings.ToLower(v); l != "when_supported" && l != "when_required" {
			return fmt.Errorf("query parameter %s=%q is not when_supported or when_required", name, v)
		}
	case "region", "profile":
		if v == "" {
			return fmt.Errorf("query parameter %s is empty", name)
		}
	}
	return nil
}

// probe lists at most one key under the prefix: the bucket exists and the
// credentials work.
func (s *Store) probe(ctx context.Context) error {
	_, err := retry(ctx, s, newBudget(s.opts.RetryBudget), func(ctx context.Context) (struct{}, error) {
		_, _, err := s.bucket.ListPage(ctx, blob.FirstPageToken, 1, nil)
		return struct{}{}, err
	})
	if err != nil {
		return s.fail("open", s.url, err, nil)
	}
	return nil
}

// stripUserinfo removes "user:password@" from a URL that did not parse.
func stripUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+3] + "REDACTED@" + rest[at+1:]
	}
	return raw
}
