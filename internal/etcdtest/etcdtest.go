// Package etcdtest starts a real, embedded etcd server for tests
// (go.etcd.io/etcd/server/v3/embed): one member on free loopback ports,
// with its data in a test's temporary directory. A server can be stopped
// and started again on the same data directory and ports, as an operator
// restarting etcd would.
//
// # Caveats
//
// The ports are found free by listening on port 0 and closing the
// listener, so another process may take one in between; Start then fails
// the test rather than hang. The server logs at error level only.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Server is one embedded etcd member.
type Server struct {
	t         testing.TB
	configure []func(*embed.Config)
	dir       string
	clientURL url.URL
	peerURL   url.URL
	e         *embed.Etcd
}

// Start starts a new member in a fresh temporary directory and stops it
// when the test ends. Each configure function, if any, changes the
// member's configuration before it starts (and restarts), e.g. a lower
// MaxTxnOps.
func Start(t testing.TB, configure ...func(*embed.Config)) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), clientURL: freeURL(t), peerURL: freeURL(t), configure: configure}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func freeURL(t testing.TB) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return url.URL{Scheme: "http", Host: addr}
}

func (s *Server) start() {
	s.t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(nopLogger())
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	for _, f := range s.configure {
		f(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		s.t.Fatalf("etcdtest: start etcd in %s: %v", s.dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		s.t.Fatalf("etcdtest: etcd in %s not ready after 60 s", s.dir)
	}
	s.e = e
}

// Endpoints returns the client endpoint, as Config.Endpoints takes it.
func (s *Server) Endpoints() []string { return []string{s.clientURL.String()} }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.dir }

// Stop stops the member; its data stays. Safe to call twice.
func (s *Server) Stop() {
	if s.e == nil {
		return
	}
	s.e.Close()
	<-s.e.Server.StopNotify()
	s.e = nil
}

// Restart starts the stopped member again on the same data directory and
// ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Client returns a client of the member, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second, Logger: nopLogger()})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Dump returns every key under prefix with its value, for a failure
// message.
func Dump(cli *clientv3.Client, prefix string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return "etcd dump: " + err.Error()
	}
	out := ""
	for _, kv := range resp.Kvs {
		out += fmt.Sprintf("%s = %s\n", kv.Key, kv.Value)
	}
	return out
}
