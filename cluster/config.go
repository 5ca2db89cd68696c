package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is the key prefix of kvrflow's keys in etcd.
const DefaultPrefix = "/kvrflow/"

// Config says how to reach etcd.
type Config struct {
	Endpoints         []string // host:port or URLs
	CACert, Cert, Key string   // TLS files; TLS is on when CACert or Cert is set
	User              string   // etcd auth user; the CLI reads Password from env/file
	Password          string
	Prefix            string        // key prefix, default DefaultPrefix
	DialTimeout       time.Duration // default 5 s
}

// NormPrefix returns prefix with a trailing slash, DefaultPrefix if empty.
func NormPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix
}

// Connect returns a client of the etcd cluster c names. It does not wait
// for a connection: the first request fails if etcd is unreachable.
func Connect(ctx context.Context, c Config) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("etcd: no endpoints")
	}
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		Username:    c.User,
		Password:    c.Password,
		Context:     ctx,
		Logger:      zap.NewNop(),
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if c.CACert != "" || c.Cert != "" {
		info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CACert}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	return cli, nil
}
