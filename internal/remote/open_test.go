package remote

import (
	"sync"

	"github.com/kvrflow/kvrflow/internal/s3test"

	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkMessage: one line, names want, holds none of the secrets.
func checkMessage(t *testing.T, err error, want string, secrets ...string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("message is not one line: %q", msg)
	}
	if want != "" && !strings.Contains(msg, want) {
		t.Errorf("message %q does not name %q", msg, want)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("message %q holds the secret %q", msg, s)
		}
	}
}

func TestOpen_BadURLIsErrBadURLNamingTheURL(t *testing.T) {
	awsEnv(t)
	for _, tc := range []struct{ url, names string }{
		{"", "no scheme"},
		{"/var/backups/db", "no scheme"},
		{"http://example.com/b", `unsupported scheme "http"`},
		{"s3://", "no bucket"},
		{"s3:///prefix", "no bucket"},
		{"s3:bucket/prefix", "s3:bucket/prefix"},
		{"s3://bucket/p?bogus=1", `unknown query parameter "bogus"`},
		{"s3://bucket/p?use_path_style=maybe", `use_path_style="maybe"`},
		{"s3://bucket/p?endpoint=localhost:9000", "not an absolute URL"},
		{"s3://bucket/p?ssetype=rot13", "ssetype"},
		{"s3://bucket/p?fips=perhaps", "fips"},
		{"s3://bucket/p?role=admin", "not an ARN"},
		{"s3://bucket/p?request_checksum_calculation=always", "request_checksum_calculation"},
		{"s3://AKIAUSER:hunter2-secret@bucket/p", "credentials in the URL"},
		{"s3://AKIAUSER:hunter2-secret@bucket/p%zz", "invalid URL escape"},
		{"file://host/dir", "file:///ABSOLUTE/DIR"},
	} {
		_, err := Open(ctxT(t, 5*time.Second), tc.url, Options{})
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", tc.url, err)
			continue
		}
		checkMessage(t, err, tc.names, "hunter2-secret")
		if e, ok := errors.AsType[*Error](err); !ok || e.Op != "open" {
			t.Errorf("Open(%q): %T %v, want *Error with Op open", tc.url, err, err)
		}
	}
}

func TestOpen_MissingBucketIsErrNotFound(t *testing.T) {
	gw := startGateway(t)
	awsEnv(t)
	url := s3URL(gw.Endpoint, "no-such-bucket-kvrflow", "x/")
	_, err := Open(ctxT(t, 10*time.Second), url, testOptions())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a missing bucket = %v, want ErrNotFound", err)
	}
	checkMessage(t, err, "s3://no-such-bucket-kvrflow/x/", gwSecret)
	checkMessage(t, err, "NoSuchBucket")
}

func TestOpen_WrongCredentialsIsErrAccessDeniedWithoutTheSecret(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	for _, tc := range []struct {
		name, key, secret, token string
	}{
		{"wrong secret", gwAccess, "wrong-secret-0123456789abcdef", ""},
		{"unknown key", "AKIANOSUCHKEY", "another-secret-fedcba9876543210", ""},
		{"with a session token", gwAccess, "third-secret-0000111122223333", "session-token-abcdefghijklmnop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			t.Setenv("AWS_ACCESS_KEY_ID", tc.key)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			if tc.token != "" {
				t.Setenv("AWS_SESSION_TOKEN", tc.token)
			}
			_, err := Open(ctxT(t, 10*time.Second), s3URL(gw.Endpoint, bucket, "p/"), testOptions())
			if !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("Open = %v, want ErrAccessDenied", err)
			}
			secrets := []string{tc.secret, gwSecret}
			if tc.token != "" {
				secrets = append(secrets, tc.token)
			}
			checkMessage(t, err, "s3://"+bucket+"/p/", secrets...)
			checkMessage(t, err, "HTTP 4")
			t.Logf("the message: %v", err)
		})
	}
}

func TestOpen_NoCredentialsIsErrAccessDenied(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := Open(ctxT(t, 10*time.Second), s3URL(gw.Endpoint, bucket, "p/"), testOptions())
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Open without credentials = %v, want ErrAccessDenied", err)
	}
	checkMessage(t, err, "s3://"+bucket+"/p/")
}

func TestOpen_EndpointAndRegionFromTheEnvironment(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", gw.Endpoint)
	s, err := Open(ctxT(t, 10*time.Second), "s3://"+bucket+"/p?use_path_style=true", testOptions())
	if err != nil {
		t.Fatalf("Open with AWS_ENDPOINT_URL_S3: %v", err)
	}
	s.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", gw.Endpoint)
	s, err = Open(ctxT(t, 10*time.Second), "s3://"+bucket+"/p?use_path_style=true", testOptions())
	if err != nil {
		t.Fatalf("Open with AWS_ENDPOINT_URL: %v", err)
	}
	s.Close()
}

func TestOpen_ProfileFromTheSharedFiles(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(cfg, []byte("[profile kvr]\nregion = "+gwRegion+"\nendpoint_url = "+gw.Endpoint+"\n"), 0o600)
	os.WriteFile(creds, []byte("[kvr]\naws_access_key_id = "+gwAccess+"\naws_secret_access_key = "+gwSecret+"\n"), 0o600)
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_PROFILE", "kvr")
	s, err := Open(ctxT(t, 10*time.Second), "s3://"+bucket+"/p?use_path_style=true", testOptions())
	if err != nil {
		t.Fatalf("Open with AWS_PROFILE: %v", err)
	}
	s.Close()
	// The profile named in the URL wins; a missing one is ErrConfig.
	_, err = Open(ctxT(t, 10*time.Second), "s3://"+bucket+"/p?use_path_style=true&profile=nosuch", testOptions())
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Open with a missing profile = %v, want ErrConfig", err)
	}
	checkMessage(t, err, "s3://"+bucket+"/p", gwSecret)
}

func TestStore_StringHasNoSecret(t *testing.T) {
	gw := startGateway(t)
	bucket := newBucket(t, gw)
	awsEnv(t)
	s := openS3(t, gw.Endpoint, bucket, "p/", testOptions())
	if got := s.String(); strings.Contains(got, gwSecret) || !strings.HasPrefix(got, "s3://"+bucket+"/p/") {
		t.Errorf("String() = %q", got)
	}
	if got := safeURL(mustParse(t, "azblob://c/p?sig=abcdefsecret&sv=2020")); strings.Contains(got, "abcdefsecret") {
		t.Errorf("safeURL kept a SAS signature: %q", got)
	}
}

// A server that echoes the credentials in its error message (a buggy or
// hostile proxy): the message must still not hold them.
func TestOpen_SecretEchoedByTheServerIsRedacted(t *testing.T) {
	awsEnv(t)
	const secret, token = "echoed-secret-0123456789abcdefgh", "echoed-session-token-ABCDEFGHIJ"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s3test.ErrorMessage(w, 403, "AccessDenied", "your secret is "+secret+" and your token "+token+" and key "+gwAccess)
	}))
	defer srv.Close()
	_, err := Open(ctxT(t, 10*time.Second), s3URL(srv.URL, "bucket", "p/"), testOptions())
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Open = %v, want ErrAccessDenied", err)
	}
	checkMessage(t, err, "REDACTED", secret, token, gwAccess)
}

// AWS_SESSION_TOKEN is used, not only redacted: every request carries it
// as X-Amz-Security-Token (temporary credentials from STS or SSO), as the
// AWS tools send it.
func TestOpen_SessionTokenIsSent(t *testing.T) {
	awsEnv(t)
	const token = "session-token-sent-0123456789ABCDEF"
	t.Setenv("AWS_SESSION_TOKEN", token)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Amz-Security-Token"))
		mu.Unlock()
		s3test.ErrorMessage(w, 403, "AccessDenied", "denied")
	}))
	defer srv.Close()
	_, err := Open(ctxT(t, 10*time.Second), s3URL(srv.URL, "bucket", "p/"), testOptions())
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("Open = %v, want ErrAccessDenied", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("no request reached the server")
	}
	for i, h := range got {
		if h != token {
			t.Errorf("request %d: X-Amz-Security-Token %q, want the session token", i, h)
		}
	}
}
