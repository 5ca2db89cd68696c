package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow/internal/etcdproc"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestOpenWatch_RefusedIsEtcdsPermissionError: a user allowed to read
// attempts/ only opens a watch there, and is refused one on restores/
// with the error a refused Get returns (rpctypes.ErrPermissionDenied:
// the CLI's exit 2), promptly, not after RequestTimeout.
func TestOpenWatch_RefusedIsEtcdsPermissionError(t *testing.T) {
	srv := etcdtest.Start(t)
	root := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "reader", "/w/attempts/", clientv3.GetPrefixRangeEnd("/w/attempts/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "u", "upw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "u", "reader"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Username: "u", Password: "upw", DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	w, err := openWatch(ctx, cli, "/w/attempts/")
	if err != nil {
		t.Fatalf("a permitted watch: %v", err)
	}
	w.close()
	_, gerr := cli.Get(ctx, "/w/restores/", clientv3.WithPrefix())
	start := time.Now()
	_, err = openWatch(ctx, cli, "/w/restores/")
	if !errors.Is(err, rpctypes.ErrPermissionDenied) || time.Since(start) >= RequestTimeout {
		t.Errorf("a refused watch: %v (after %v); want rpctypes.ErrPermissionDenied at once, as a refused Get: %v", err, time.Since(start), gerr)
	}
}

// The same against Debian's etcd (3.4), whose refusal may read otherwise.
func TestOpenWatch_RefusedIsEtcdsPermissionErrorOnDebianEtcd(t *testing.T) {
	etcdproc.Need(t)
	srv := etcdproc.Start(t, etcdproc.Options{Auth: true, Prefix: "/w/attempts/"})
	cli, err := srv.Client(etcdproc.User)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := openWatch(ctx, cli, "/w/attempts/")
	if err != nil {
		t.Fatalf("a permitted watch: %v", err)
	}
	w.close()
	_, err = openWatch(ctx, cli, "/w/restores/")
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("a refused watch: %v; want rpctypes.ErrPermissionDenied", err)
	}
}
