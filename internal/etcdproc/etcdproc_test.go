package etcdproc

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestStart_PlainServesAndSurvivesARestart: a plain server serves a
// write, is killed, and restarted on the same data directory still holds
// it.
func TestStart_PlainServesAndSurvivesARestart(t *testing.T) {
	s := Start(t, Options{})
	put(t, s, "", "/kvrflow/a", "1")
	s.Kill()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "", "/kvrflow/a"); got != "1" {
		t.Fatalf("after restart got %q, want 1", got)
	}
}

// TestStart_TLSAndAuthAdmitOnlyTheUserWithItsPassword: with TLS and auth,
// the prefix user reads and writes its prefix only, and a client with the
// certificate but without the password is refused.
func TestStart_TLSAndAuthAdmitOnlyTheUserWithItsPassword(t *testing.T) {
	s := Start(t, Options{TLS: true, Auth: true})
	put(t, s, User, "/kvrflow/x", "y")
	if got := get(t, s, User, "/kvrflow/x"); got != "y" {
		t.Fatalf("got %q", got)
	}
	cli, err := s.Client(User)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/other/x", "y"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("write outside the prefix: got %v, want permission denied", err)
	}
	anon, err := s.Client("")
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, "/kvrflow/x"); err == nil {
		t.Fatal("a client without the password read a key")
	}
}

func put(t *testing.T, s *Server, user, k, v string) {
	t.Helper()
	cli, err := s.Client(user)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *Server, user, k string) string {
	t.Helper()
	cli, err := s.Client(user)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}
