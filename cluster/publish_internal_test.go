package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestPublish_FollowingDoesNotSupersedeOnAFailedRead: a coordinator run
// again with the same plan (follow) while attempt 1 waits for its votes;
// etcd, overloaded, answers the read of attempt 1's plan "too many
// requests" (not retried by the client). That is no evidence the plan
// differs: publish must not decide the live attempt abort and publish
// attempt 2 (a second restore where the operator asked to follow the
// first), but return the error, attempt 1 untouched.
func TestPublish_FollowingDoesNotSupersedeOnAFailedRead(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/fo/", "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}
	if a, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil || a != 1 {
		t.Fatalf("publish: %d, %v", a, err)
	}
	var refused atomic.Int32
	busy, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if r, ok := req.(*pb.RangeRequest); ok && string(r.Key) == k.plan(1) {
				refused.Add(1)
				return rpctypes.ErrGRPCRequestTooManyRequests
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a, followed, err := publish(ctx, busy, k, plan, time.Minute, true)
	t.Logf("publish again: attempt %d, followed %v, %v (plan reads refused: %d)", a, followed, err, refused.Load())
	if err == nil && (a != 1 || !followed) {
		t.Errorf("publish again with the same plan: attempt %d, followed %v; want attempt 1 followed, or an error", a, followed)
	}
	if cur, _, err := current(ctx, cli, k); err != nil || cur != 1 {
		t.Errorf("current attempt %d, %v; want 1", cur, err)
	}
	if resp, err := cli.Get(ctx, k.decision(1)); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("attempt 1's decision: %v, %v; want none (it was live)", resp, err)
	}
}
