package etcdproc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Users of a server launched with Options.Auth.
const (
	// RootUser has the root role: the harness uses it to set up and to
	// inspect.
	RootUser = "root"
	// User may read and write the keys under Options.Prefix only, as an
	// operator would give kvrflow in an etcd it shares with
	// kvrocks-controller.
	User = "kvrflow"
)

// ErrNoEtcd is returned by Launch when no etcd binary is found.
var ErrNoEtcd = errors.New("etcd not found on PATH nor at /usr/bin/etcd; install Debian's etcd-server (apt-get install etcd-server)")

// Options say how to launch a server.
type Options struct {
	// Dir holds the data directory, the certificates and the log. Empty:
	// a new temporary directory, removed by Stop's caller through
	// Server.Cleanup (Start registers it).
	Dir string
	// TLS serves clients over TLS with client certificates required
	// (--client-cert-auth), with certificates made by GenerateCerts.
	TLS bool
	// Auth enables user/password authentication: a root user and User,
	// whose role may read and write the keys under Prefix.
	Auth bool
	// Prefix is User's key prefix (default "/kvrflow/").
	Prefix string
	// DefaultTiming runs etcd with its own heartbeat and election
	// timeouts (100 ms, 1 s), as production runs it, rather than the
	// tests' 20 and 200 ms (a first election in a fraction of a second,
	// but a raft tick every 20 ms: some 15 ms of CPU a second, idle).
	// The benchmarks use it.
	DefaultTiming bool
}

// Server is a running (or stopped) etcd child process.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT or https://...
	Endpoint string
	// Dir holds data (the data directory), the certificates and etcd.log.
	Dir, DataDir string
	// Certs are the TLS files (nil without Options.TLS).
	Certs *Certs
	// Password is User's, RootPassword root's (empty without Options.Auth).
	Password, RootPassword string
	Prefix                 string

	bin, peerURL string
	tempDir      bool
	opts         Options

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	log     *os.File
}

// Binary returns the path of the etcd binary: etcd on PATH, else
// /usr/bin/etcd; ErrNoEtcd if neither.
func Binary() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", ErrNoEtcd
}

// Start launches a server for the test and stops it (and removes its
// temporary directory) in the test's cleanup. Without etcd the test is
// skipped, except under CI=true, where it fails.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	Need(tb)
	if o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	s, err := Launch(o)
	if err != nil {
		tb.Fatalf("etcd: %v", err)
	}
	tb.Cleanup(s.Cleanup)
	return s
}

// Need skips the test when there is no etcd binary, except under CI=true,
// where it fails it.
func Need(tb testing.TB) {
	tb.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
}

// Launch starts a server as o says and waits until it serves a read
// (with auth, after enabling it). On error nothing is left running.
func Launch(o Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, opts: o, Prefix: o.Prefix}
	if s.Prefix == "" {
		s.Prefix = "/kvrflow/"
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "kvrflow-etcd-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	s.Dir, s.DataDir = o.Dir, filepath.Join(o.Dir, "data")
	if o.TLS {
		cd := filepath.Join(o.Dir, "certs")
		if err := os.MkdirAll(cd, 0o700); err != nil {
			return nil, err
		}
		if s.Certs, err = GenerateCerts(cd); err != nil {
			s.Cleanup()
			return nil, err
		}
	}
	var lastErr error
	for try := 0; try < 3; try++ { // a free port may be taken before etcd binds it
		if lastErr = s.launchOnNewPorts(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		s.Cleanup()
		return nil, lastErr
	}
	if o.Auth {
		if err := s.enableAuth(); err != nil {
			s.Cleanup()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) launchOnNewPorts() error {
	client, peer, err := freePorts()
	if err != nil {
		return err
	}
	scheme := "http"
	if s.Certs != nil {
		scheme = "https"
	}
	s.Endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, client)
	s.peerURL = fmt.Sprintf("http://127.0.0.1:%d", peer)
	if err := os.RemoveAll(s.DataDir); err != nil { // a failed try's
		return err
	}
	return s.startProcess()
}

// freePorts returns two ports free on 127.0.0.1 a moment ago.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// args are etcd's command line: one member on the chosen ports, short
// election timeouts (a single member elects itself; a long timeout only
// slows every start).
func (s *Server) args() []string {
	a := []string{
		"--name", "kvrflow-test",
		"--data-dir", s.DataDir,
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "kvrflow-test=" + s.peerURL,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	if !s.opts.DefaultTiming {
		a = append(a, "--heartbeat-interval", "20", "--election-timeout", "200")
	}
	if s.Certs != nil {
		a = append(a, "--cert-file", s.Certs.ServerCert, "--key-file", s.Certs.ServerKey,
			"--trusted-ca-file", s.Certs.CA, "--client-cert-auth")
	}
	return a
}

// startProcess starts etcd on the server's ports and data directory and
// waits until it serves.
func (s *Server) startProcess() error {
	lf, err := os.OpenFile(filepath.Join(s.Dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args()...)
	// No ETCD_* of the machine's environment: the flags say everything.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.Dir}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.log = cmd, exited, lf
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady polls the server until a read succeeds, it exits, or 30 s
// pass.
func (s *Server) waitReady(exited chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("etcd exited at start (%v): %s", s.waitErr, s.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd did not serve on %s within 30 s: %s", s.Endpoint, s.LogTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping reads a key as root (when auth is on) or as nobody.
func (s *Server) ping(ctx context.Context) error {
	cli, err := s.Client(RootUser)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Get(ctx, "kvrflow-test-ping")
	return err
}

// Client returns a client of the server as user (RootUser or User; its
// password is set only once auth is enabled), with the client
// certificate when TLS is on. The caller closes it.
func (s *Server) Client(user string) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if s.Certs != nil {
		tc, err := s.TLSConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	switch {
	case user == RootUser && s.RootPassword != "":
		cfg.Username, cfg.Password = RootUser, s.RootPassword
	case user == User && s.Password != "":
		cfg.Username, cfg.Password = User, s.Password
	}
	return clientv3.New(cfg)
}

// TLSConfig is the client's TLS configuration (nil without TLS).
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.Certs == nil {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: s.Certs.ClientCert, KeyFile: s.Certs.ClientKey, TrustedCAFile: s.Certs.CA}
	return info.ClientConfig()
}

// enableAuth adds root and User with their roles and turns auth on.
func (s *Server) enableAuth() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := s.Client("")
	if err != nil {
		return err
	}
	defer cli.Close()
	s.RootPassword, s.Password = "root-"+randomHex(), "kvrflow-"+randomHex()
	end := clientv3.GetPrefixRangeEnd(s.Prefix)
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, RootUser, s.RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, RootUser, "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, User); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, User, s.Prefix, end, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, User, s.Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, User, User); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("etcd enable auth: %w", err)
		}
	}
	// The server may take a moment to apply it: wait for root's read.
	return s.waitReady(s.exited)
}

// randomHex returns 16 random hex digits.
func randomHex() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

// Stop ends the server with SIGTERM (SIGKILL after 10 s) and waits. It
// is idempotent; the data directory stays, for Restart.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill ends the server with SIGKILL and waits. It is idempotent.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 0)
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, exited, lf := s.cmd, s.exited, s.log
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(sig)
		if grace > 0 {
			select {
			case <-exited:
			case <-time.After(grace):
				_ = cmd.Process.Kill()
			}
		}
		<-exited
	}
	lf.Close()
}

// Restart starts the server again on the same data directory and ports
// after Stop or Kill, and waits until it serves.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.exited != nil
	if running {
		select {
		case <-s.exited:
			running = false
		default:
		}
	}
	s.mu.Unlock()
	if running {
		return errors.New("etcd restart: the server is running")
	}
	return s.startProcess()
}

// Cleanup stops the server and removes its directory if Launch made it.
func (s *Server) Cleanup() {
	s.Stop()
	if s.tempDir {
		os.RemoveAll(s.Dir)
	}
}

// LogTail returns the last 2 KiB of etcd's log, for error messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "etcd.log"))
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(bytes.TrimSpace(b))
}
