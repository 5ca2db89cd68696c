package remote

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// fault is what the proxy does to a request instead of forwarding it.
type fault int

const (
	fault500      fault = iota + 1 // 500 InternalError
	faultSlowDown                  // 503 SlowDown
	fault403                       // 403 AccessDenied
	fault404                       // 404 NoSuchKey
	faultReset                     // the connection reset (RST), no answer
	faultTruncate                  // half the body, then the connection closed (Content-Length says all)
	faultShort                     // half the body, with a Content-Length that says half: a lying server
	faultStall                     // the headers and half the body, then nothing until the client gives up
	faultFlip                      // the whole body with one byte changed
	faultNoRange                   // the Range header dropped: 200 and the whole object
)

// rule fires its fault on the requests it matches, times times (< 0:
// always).
type rule struct {
	method string // "" any
	ranged bool   // only requests with a Range header starting at a nonzero offset
	from   string // only requests whose Range header starts with this ("bytes=131072-")
	fault  fault
	times  int
}

// faultProxy is a reverse proxy on loopback in front of the gateway that
// injects faults into chosen requests and records every request.
type faultProxy struct {
	t      testing.TB
	srv    *httptest.Server
	target *url.URL
	rp     *httputil.ReverseProxy
	stop   chan struct{} // closed at cleanup: stalled handlers return

	mu    sync.Mutex
	rules []*rule
	log   []string // "METHOD path range -> fault"
}

func newFaultProxy(t testing.TB, gw *gateway) *faultProxy {
	t.Helper()
	target, _ := url.Parse(gw.endpoint)
	p := &faultProxy{t: t, target: target, stop: make(chan struct{})}
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

func (p *faultProxy) URL() string { return p.srv.URL }

func (p *faultProxy) add(r rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &r)
}

// requests returns the requests seen with the given method whose path
// ends with suffix.
func (p *faultProxy) requests(method, suffix string) []string {
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

func (p *faultProxy) pick(r *http.Request) fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	rg := r.Header.Get("Range")
	var f fault
	for _, ru := range p.rules {
		if ru.times == 0 || (ru.method != "" && ru.method != r.Method) {
			continue
		}
		if ru.ranged && (rg == "" || strings.HasPrefix(rg, "bytes=0-")) {
			continue
		}
		if ru.from != "" && !strings.HasPrefix(rg, ru.from) {
			continue
		}
		f = ru.fault
		if ru.times > 0 {
			ru.times--
		}
		break
	}
	p.log = append(p.log, fmt.Sprintf("%s %s %s -> %d ?%s if-none-match=%s", r.Method, r.URL.Path, rg, f, r.URL.RawQuery, r.Header.Get("If-None-Match")))
	return f
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	switch f := p.pick(r); f {
	case 0:
		p.rp.ServeHTTP(w, r)
	case faultNoRange:
		p.wholeObject(w, r)
	case fault500:
		s3Error(w, 500, "InternalError")
	case faultSlowDown:
		s3Error(w, 503, "SlowDown")
	case fault403:
		s3Error(w, 403, "AccessDenied")
	case fault404:
		s3Error(w, 404, "NoSuchKey")
	case faultReset:
		conn := hijack(p.t, w)
		conn.(*net.TCPConn).SetLinger(0) // close sends RST
		conn.Close()
	default:
		p.damage(w, r, f)
	}
}

func s3Error(w http.ResponseWriter, status int, code string) {
	s3ErrorMessage(w, status, code, "injected by the test proxy")
}

func s3ErrorMessage(w http.ResponseWriter, status int, code, msg string) {
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
func (p *faultProxy) damage(w http.ResponseWriter, r *http.Request, f fault) {
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
	case faultTruncate, faultStall:
		send = body[:len(body)/2]
	case faultShort:
		send = body[:len(body)/2]
		length = len(send)
	case faultFlip:
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
	if f == faultStall {
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
func (p *faultProxy) wholeObject(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), "GET", p.target.String()+r.URL.EscapedPath(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds := aws.Credentials{AccessKeyID: gwAccess, SecretAccessKey: gwSecret}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, emptySHA256, "s3", gwRegion, time.Now()); err != nil {
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
