package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdproc"
)

// TestEtcdError_RefusedCredentialsAreBadInput: what etcd answers a client
// without a password, with a wrong one, or with a user outside its
// permissions, is exit 2, in one line naming the endpoint; an etcd that
// does not answer is not (the agent's undecided case, exit 5, is its).
func TestEtcdError_RefusedCredentialsAreBadInput(t *testing.T) {
	s := etcdproc.Start(t, etcdproc.Options{TLS: true, Auth: true})
	base := cluster.Config{Endpoints: []string{s.Endpoint}, CACert: s.Certs.CA, Cert: s.Certs.ClientCert, Key: s.Certs.ClientKey,
		DialTimeout: 2 * time.Second}
	ask := func(c cluster.Config, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, err := cluster.Connect(ctx, c)
		if err != nil {
			return etcdError(err, c)
		}
		defer cli.Close()
		_, err = cli.Get(ctx, key)
		return etcdError(err, c)
	}
	withUser := func(user, pw string) cluster.Config { c := base; c.User, c.Password = user, pw; return c }
	for name, err := range map[string]error{
		"no password":    ask(base, "/kvrflow/x"),
		"wrong password": ask(withUser(etcdproc.User, "wrong"), "/kvrflow/x"),
		"outside prefix": ask(withUser(etcdproc.User, s.Password), "/other/x"),
	} {
		t.Logf("%s: %v", name, err)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit %d, want 2: %v", name, code, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, s.Endpoint) || strings.Contains(msg, "\n") {
			t.Errorf("%s: want one line naming %s: %q", name, s.Endpoint, msg)
		}
	}
	if err := ask(withUser(etcdproc.User, s.Password), "/kvrflow/x"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	s.Stop()
	if err := ask(withUser(etcdproc.User, s.Password), "/kvrflow/x"); err == nil || exitCode(err) == exitUsage {
		t.Errorf("etcd stopped: want an error that is not bad input, got %v (exit %d)", err, exitCode(err))
	}
}
