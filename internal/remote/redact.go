package remote

import (
	"context"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// redactor replaces every credential it has seen in a message. The
// credentials provider records what it hands to the SDK (recordingProvider),
// so refreshed session tokens are redacted too.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for _, s := range secrets {
		if len(s) < 4 {
			continue // too short to be a credential; replacing it would garble messages
		}
		for _, have := range r.secrets {
			if have == s {
				continue next
			}
		}
		r.secrets = append(r.secrets, s)
	}
}

func (r *redactor) redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "REDACTED")
	}
	return s
}

// recordingProvider hands out the inner provider's credentials and records
// them for redaction: the access key id, the secret and the session token.
type recordingProvider struct {
	inner aws.CredentialsProvider
	red   *redactor
}

func (p recordingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	p.red.add(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	return c, nil
}

// credentialsError is a failure to find or refresh credentials: access
// denied before any request.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string {
	return "no usable AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the shared files, SSO, IMDS): " + e.err.Error()
}

func (e *credentialsError) Unwrap() []error { return []error{ErrAccessDenied, e.err} }

// sensitiveParam reports whether a query parameter may carry a secret (an
// Azure SAS signature, a key path); its value is shown as REDACTED.
func sensitiveParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"secret", "token", "key", "password", "sig", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// safeURL renders u without user information and with sensitive query
// values replaced: the form every message and String() uses.
func safeURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		redacted := false
		for name := range q {
			if sensitiveParam(name) {
				q[name] = []string{"REDACTED"}
				redacted = true
			}
		}
		if redacted {
			c.RawQuery = q.Encode()
		}
	}
	return c.String()
}

// SafeURL returns rawURL as every message of this package shows it: no
// user information, sensitive query values REDACTED. A URL that does not
// parse loses its user information and its query. It is the form a
// caller may journal or log.
func SafeURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		s, _, _ := strings.Cut(stripUserinfo(rawURL), "?")
		return s
	}
	return safeURL(u)
}

// URLOf returns the URL of the object at key, for messages: the store's
// scheme, bucket and prefix, without the query or any secret.
func (s *Store) URLOf(key string) string { return s.base + key }
