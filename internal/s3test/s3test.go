// Package s3test runs the tests' S3 server: versitygw over a temporary
// directory on a free loopback port, started once per test binary (call
// Main from TestMain to stop it), and a fault-injecting reverse proxy in
// front of it. Without versitygw a test is skipped, except under CI=true,
// where it fails. AWSEnv clears the machine's AWS_* variables and sets the
// gateway's credentials.
package s3test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The tests' S3 server: versitygw over a temporary directory, on a free
// loopback port, started once for the package (TestMain stops it).
const (
	Access = "kvrflowtestkey"
	Secret = "kvrflow-test-secret-d41d8cd98f00b204"
	Region = "us-east-1"
)

type Gateway struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	dir      string
	log      *bytes.Buffer
}

var shared struct {
	once sync.Once
	gw   *Gateway
	err  error
	skip string
}

// Main runs the tests of a package, then stops the gateway if one was
// started: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.gw != nil {
		shared.gw.stop()
	}
	os.Exit(code)
}

// Stop stops the gateway if one was started: for a TestMain that has more
// to do after m.Run than Main allows. Safe to call more than once.
func Stop() {
	if shared.gw != nil {
		shared.gw.stop()
		shared.gw = nil
	}
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

// Start returns the package's versitygw, starting it on first use.
// Without versitygw the test is skipped, except under CI=true, where it
// fails.
func Start(t testing.TB) *Gateway {
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

func launch(bin string) (*Gateway, error) {
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
	gw := &Gateway{Endpoint: "http://" + addr, dir: dir, log: &bytes.Buffer{}}
	gw.cmd = exec.Command(bin, "--access", Access, "--secret", Secret, "--region", Region,
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
		resp, err := http.Get(gw.Endpoint + "/")
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

func (gw *Gateway) stop() {
	gw.cmd.Process.Signal(os.Interrupt)
	time.Sleep(100 * time.Millisecond)
	gw.cmd.Process.Kill()
	os.RemoveAll(gw.dir)
}

// AWSEnv clears every AWS_* variable of the machine (AWS_CA_BUNDLE, a
// profile, ...), points the shared files at nothing, and sets the
// gateway's credentials and region.
func AWSEnv(t testing.TB) {
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
	t.Setenv("AWS_ACCESS_KEY_ID", Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", Secret)
	t.Setenv("AWS_REGION", Region)
}

var bucketSeq atomic.Int64

// NewBucket creates a fresh bucket on the gateway, named after the test.
func NewBucket(t testing.TB, gw *Gateway) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	name = fmt.Sprintf("b%d-%s", bucketSeq.Add(1), name)
	name = strings.TrimRight(name[:min(len(name), 60)], "-")
	c := s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(gw.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(Access, Secret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// URL is the URL of bucket/prefix on endpoint, path-style.
func URL(endpoint, bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&use_path_style=true", bucket, prefix, endpoint)
}

// Fault is what the proxy does to a request instead of forwarding it.
type Fault int

const (
	Fault500      Fault = iota + 1 // 500 InternalError
	FaultSlowDown                  // 503 SlowDown
	Fault403                       // 403 AccessDenied
	Fault404                       // 404 NoSuchKey
	FaultReset                     // the connection reset (RST), no answer
	FaultTruncate                  // half the body, then the connection closed (Content-Length says all)
	FaultShort                     // half the body, with a Content-Length that says half: a lying server
	FaultStall                     // the headers and half the body, then nothing until the client gives up
	FaultFlip                      // the whole body with one byte changed
	FaultNoRange                   // the Range header dropped: 200 and the whole object
)

// Rule fires its fault on the requests it matches, times times (< 0:
// always).
type Rule struct {
	Method string // "" any
	Ranged bool   // only requests with a Range header starting at a nonzero offset
	From   string // only requests whose Range header starts with this ("bytes=131072-")
	Path   string // only requests whose URL path ends with this ("/prefix/key")
	Fault  Fault
	Times  int
}

// Proxy is a reverse proxy on loopback in front of the gateway that
// injects faults into chosen requests and records every request.
type Proxy struct {
	t      testing.TB
	srv    *httptest.Server
	target *url.URL
	rp     *httputil.ReverseProxy
	stop   chan struct{} // closed at cleanup: stalled handlers return

	mu    sync.Mutex
	rules []*Rule
	log   []string // "METHOD path range -> fault"
}

func NewProxy(t testing.TB, gw *Gateway) *Proxy {
	t.Helper()
	target, _ := url.Parse(gw.Endpoint)
	p := &Proxy{t: t, target: target, stop: make(chan struct{})}
	p.rp = httputil.NewSingleHostReverseProxy(target) // keeps the Host header: the signature stays valid
	p.rp.ErrorLog = nil
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.stop)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *Proxy) URL() string { return p.srv.URL }

func (p *Proxy) Add(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &r)
}

// Requests returns the requests seen with the given method whose path
// ends with suffix.
func (p *Proxy) Requests(method, suffix string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.log {
		path := strings.Fields(l)[1]
		if strings.HasPrefix(l, method+" ") && strings.HasSuffix(path, suffix) {
			out = append(out, l)
		}
	}
	return out
}

func (p *Proxy) pick(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	rg := r.Header.Get("Range")
	var f Fault
	for _, ru := range p.rules {
		if ru.Times == 0 || (ru.Method != "" && ru.Method != r.Method) {
			continue
		}
		if ru.Ranged && (rg == "" || strings.HasPrefix(rg, "bytes=0-")) {
			continue
		}
		if ru.From != "" && !strings.HasPrefix(rg, ru.From) {
			continue
		}
		if ru.Path != "" && !strings.HasSuffix(r.URL.Path, ru.Path) {
			continue
		}
		f = ru.Fault
		if ru.Times > 0 {
			ru.Times--
		}
		break
	}
	p.log = append(p.log, fmt.Sprintf("%s %s %s -> %d ?%s if-none-match=%s if-match=%s", r.Method, r.URL.Path, rg, f, r.URL.RawQuery, r.Header.Get("If-None-Match"), r.Header.Get("If-Match")))
	return f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	switch f := p.pick(r); f {
	case 0:
		p.rp.ServeHTTP(w, r)
	case FaultNoRange:
		p.wholeObject(w, r)
	case Fault500:
		s3Error(w, 500, "InternalError")
	case FaultSlowDown:
		s3Error(w, 503, "SlowDown")
	case Fault403:
		s3Error(w, 403, "AccessDenied")
	case Fault404:
		s3Error(w, 404, "NoSuchKey")
	case FaultReset:
		conn := hijack(p.t, w)
		conn.(*net.TCPConn).SetLinger(0) // close sends RST
		conn.Close()
	default:
		p.damage(w, r, f)
	}
}

func s3Error(w http.ResponseWriter, status int, code string) {
	ErrorMessage(w, status, code, "injected by the test proxy")
}

// ErrorMessage answers as S3 does with an error: status and an XML body
// with code and msg.
func ErrorMessage(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

func hijack(t testing.TB, w http.ResponseWriter) net.Conn {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
	}
	return conn
}

// damage forwards the request and writes the real response back, damaged,
// as raw HTTP/1.1 on the hijacked connection.
func (p *Proxy) damage(w http.ResponseWriter, r *http.Request, f Fault) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn := hijack(p.t, w)
	defer conn.Close()
	bw := bufio.NewWriter(conn)
	send := body
	length := len(body)
	switch f {
	case FaultTruncate, FaultStall:
		send = body[:len(body)/2]
	case FaultShort:
		send = body[:len(body)/2]
		length = len(send)
	case FaultFlip:
		send = append([]byte(nil), body...)
		if len(send) > 0 {
			send[len(send)/2] ^= 0x40
		}
	}
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Del("Content-Length")
	resp.Header.Set("Connection", "close")
	resp.Header.Write(bw)
	fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", length)
	bw.Write(send)
	bw.Flush()
	if f == FaultStall {
		done := make(chan struct{})
		go func() {
			select {
			case <-p.stop:
				conn.Close()
			case <-done:
			}
		}()
		conn.Read(make([]byte, 1)) // returns when the client gives up and closes, or at cleanup
		close(done)
	}
}

// wholeObject answers a ranged GET as a server that ignores Range would:
// 200 and the whole object, fetched with a request of its own, signed with
// the gateway's credentials (the client's signature covers its Range).
func (p *Proxy) wholeObject(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), "GET", p.target.String()+r.URL.EscapedPath(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds := aws.Credentials{AccessKeyID: Access, SecretAccessKey: Secret}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, emptySHA256, "s3", Region, time.Now()); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
