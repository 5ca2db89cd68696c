package cluster

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestStatus_ReadOnlyRoleOnThePrefixReads: readReport reads an attempt
// with one Get of restores/NAME/A/, which etcd's auth permits only if the
// role may read that whole range. A read-only role on kvrflow's prefix
// (a status user) may. A role granted only the four ranges the earlier
// Txn read (plan, decision, votes/, outcome/ of one attempt), and not
// voters/ between them, may not any more: logged, not required (such a
// role must be granted again for every attempt of every restore; the
// coordinator's watch of the attempt needs the whole range too).
func TestStatus_ReadOnlyRoleOnThePrefixReads(t *testing.T) {
	srv := etcdtest.Start(t)
	root := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const prefix = "/au/"
	k := keysOf(prefix, "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}}}
	if a, _, err := publish(ctx, root, k, plan, time.Minute, true); err != nil || a != 1 {
		t.Fatalf("publish: %d, %v", a, err)
	}
	if _, err := vote(ctx, root, k, 1, 0, "a", votePrepared, voter("h")); err != nil {
		t.Fatal(err)
	}
	read := clientv3.PermissionType(clientv3.PermRead)
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "status"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "status", prefix, clientv3.GetPrefixRangeEnd(prefix), read)
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "s", "spw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "s", "status"); return err },
		func() error { _, err := root.RoleAdd(ctx, "narrow"); return err },
		func() error { _, err := root.RoleGrantPermission(ctx, "narrow", k.attempt(), "", read); return err },
		func() error { _, err := root.RoleGrantPermission(ctx, "narrow", k.plan(1), "", read); return err },
		func() error { _, err := root.RoleGrantPermission(ctx, "narrow", k.decision(1), "", read); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "narrow", k.votes(1), clientv3.GetPrefixRangeEnd(k.votes(1)), read)
			return err
		},
		func() error {
			_, err := root.RoleGrantPermission(ctx, "narrow", k.outcomes(1), clientv3.GetPrefixRangeEnd(k.outcomes(1)), read)
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "n", "npw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "n", "narrow"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user, pw string) *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Username: user, Password: pw, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	rep, err := Status(ctx, as("s", "spw"), prefix, "r")
	if err != nil || rep.Attempt != 1 || len(rep.Nodes) != 1 || rep.Nodes[0].Vote != votePrepared {
		t.Errorf("status as a read-only user of the prefix: %+v, %v", rep, err)
	}
	rep, err = Status(ctx, as("n", "npw"), prefix, "r")
	t.Logf("status as a user granted only the earlier Txn's four ranges: %+v, %v", rep, err)
}
