package remote

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The tests' S3 server: versitygw over a temporary directory, on a free
// loopback port, started once for the package (TestMain stops it).
const (
	gwAccess = "kvrflowtestkey"
	gwSecret = "kvrflow-test-secret-d41d8cd98f00b204"
	gwRegion = "us-east-1"
)

type gateway struct {
	endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	dir      string
	log      *bytes.Buffer
}

var shared struct {
	once sync.Once
	gw   *gateway
	err  error
	skip string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.gw != nil {
		shared.gw.stop()
	}
	os.Exit(code)
}

// versitygwPath finds versitygw on PATH or in GOPATH/bin.
func versitygwPath() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// startGateway returns the package's versitygw, starting it on first use.
// Without versitygw the test is skipped, except under CI=true, where it
// fails.
func startGateway(t testing.TB) *gateway {
	t.Helper()
	shared.once.Do(func() {
		bin := versitygwPath()
		if bin == "" {
			shared.skip = "versitygw not found on PATH or in GOPATH/bin; install it: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
			return
		}
		for try := 0; try < 3; try++ { // the free port may be taken before versitygw binds it
			shared.gw, shared.err = launch(bin)
			if shared.err == nil {
				return
			}
		}
	})
	if shared.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(shared.skip)
		}
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.gw
}

func launch(bin string) (*gateway, error) {
	dir, err := os.MkdirTemp("", "kvrflow-versitygw-")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	gw := &gateway{endpoint: "http://" + addr, dir: dir, log: &bytes.Buffer{}}
	gw.cmd = exec.Command(bin, "--access", gwAccess, "--secret", gwSecret, "--region", gwRegion,
		"--port", addr, "--quiet", "posix", root)
	// Nothing of the machine's environment (ROOT_ACCESS_KEY, VGW_*, AWS_*).
	gw.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	gw.cmd.Stdout, gw.cmd.Stderr = gw.log, gw.log
	if err := gw.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- gw.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("versitygw exited: %v: %s", err, gw.log)
		default:
		}
		resp, err := http.Get(gw.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return gw, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	gw.cmd.Process.Kill()
	os.RemoveAll(dir)
	return nil, fmt.Errorf("versitygw did not answer on %s within 15 s: %s", addr, gw.log)
}

func (gw *gateway) stop() {
	gw.cmd.Process.Signal(os.Interrupt)
	time.Sleep(100 * time.Millisecond)
	gw.cmd.Process.Kill()
	os.RemoveAll(gw.dir)
}

// awsEnv clears every AWS_* variable of the machine (AWS_CA_BUNDLE, a
// profile, ...), points the shared files at nothing, and sets the
// gateway's credentials and region.
func awsEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k) // t.Setenv restores it at cleanup
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", gwAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", gwSecret)
	t.Setenv("AWS_REGION", gwRegion)
}

var bucketSeq atomic.Int64

// newBucket creates a fresh bucket on the gateway, named after the test.
func newBucket(t testing.TB, gw *gateway) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	name = fmt.Sprintf("b%d-%s", bucketSeq.Add(1), name)
	name = strings.TrimRight(name[:min(len(name), 60)], "-")
	c := s3.New(s3.Options{
		Region:       gwRegion,
		BaseEndpoint: aws.String(gw.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(gwAccess, gwSecret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// s3URL is the URL of bucket/prefix on endpoint, path-style.
func s3URL(endpoint, bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&use_path_style=true", bucket, prefix, endpoint)
}

// testOptions are small parts and quick retries, for small objects.
func testOptions() Options {
	return Options{
		PartSize:      64 << 10,
		Concurrency:   3,
		RetryAttempts: 4,
		RetryBudget:   10,
		RetryInitial:  10 * time.Millisecond,
		RetryMax:      50 * time.Millisecond,
		IdleTimeout:   2 * time.Second,
	}
}

// openS3 opens bucket/prefix on endpoint with the gateway's credentials.
func openS3(t testing.TB, endpoint, bucket, prefix string, o Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, s3URL(endpoint, bucket, prefix), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
