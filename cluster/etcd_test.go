package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestCluster_EtcdUnreachableWhileRecoveringStaysPrepared: node n2
// crashes right after its vote; the others commit. etcd then stops: n2's
// new agent finds its run prepared, cannot ask etcd, and leaves it
// prepared (ErrUndecided, exit 5; a plain recover says the same), its
// database old. etcd starts again on the same data directory: n2's next
// agent commits, and every node is new.
func TestCluster_EtcdUnreachableWhileRecoveringStaysPrepared(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix, name = "/u/", "u"
	plan := planOf(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	var coordErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, coordErr = runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Minute, Wait: 110 * time.Second})
	}()
	var others sync.WaitGroup
	for _, i := range []int{0, 2} {
		others.Add(1)
		go func() {
			defer others.Done()
			if res := runAgent(ctx, cli, prefix, nodes[i], nil); res.err != nil || res.crash != "" {
				t.Errorf("agent %s: %v %q", nodes[i].id, res.err, res.crash)
			}
		}()
	}
	if res := runAgent(ctx, cli, prefix, nodes[1], crashSet(t, "cluster.agent.after-vote:crash")); res.crash == "" {
		t.Fatalf("n2 did not crash after its vote: %+v", res)
	}
	others.Wait()

	srv.Stop()
	res := runAgent(ctx, cli, prefix, nodes[1], nil)
	if !errors.Is(res.err, cluster.ErrUndecided) || !errors.Is(res.err, fsm.ErrUndecided) {
		t.Fatalf("n2 with etcd down: %v, want ErrUndecided", res.err)
	}
	if s := nodes[1].state(t); s != "old" {
		t.Fatalf("n2 with etcd down holds %s, want old (prepared, undecided)", s)
	}
	if runs, err := kvrflow.PreparedRuns(kvrflow.Options{DB: nodes[1].db}); err != nil || len(runs) != 1 {
		t.Fatalf("n2 prepared runs %v, %v; want its one run", runs, err)
	}
	if _, err := kvrflow.Recover(ctx, kvrflow.Options{DB: nodes[1].db}); !errors.Is(err, fsm.ErrUndecided) || !errors.Is(err, fsm.ErrInFlight) {
		t.Fatalf("recover without a decider: %v, want ErrUndecided and ErrInFlight (exit 5)", err)
	}

	srv.Restart()
	if res := runAgentAgain(ctx, cli, prefix, nodes[1]); res.err != nil {
		t.Fatalf("n2 with etcd back: %+v", res)
	}
	wg.Wait()
	if coordErr != nil {
		t.Errorf("coordinator: %v", coordErr)
	}
	c := &tally{}
	c.check(t, cli, prefix, name, nodes, "etcd unreachable")
	noPrepared(t, nodes, "etcd unreachable")
}

// TestCluster_EtcdRestartedMidProtocol: n1 and n2 vote, then etcd stops;
// n3's agent, started while etcd is down, does nothing and says
// undecided; etcd starts again on the same data directory, the waiting
// agents and the coordinator carry on, n3 restores and votes, and every
// node commits.
func TestCluster_EtcdRestartedMidProtocol(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix, name = "/m/", "m"
	plan := planOf(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var coordErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, coordErr = runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Minute, Wait: 110 * time.Second})
	}()
	for _, i := range []int{0, 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := runAgent(ctx, cli, prefix, nodes[i], nil); res.err != nil || res.crash != "" {
				t.Errorf("agent %s: %v %q", nodes[i].id, res.err, res.crash)
			}
		}()
	}
	waitKey(t, ctx, cli, prefix+"restores/"+name+"/1/votes/n1")
	waitKey(t, ctx, cli, prefix+"restores/"+name+"/1/votes/n2")
	srv.Stop()
	if res := runAgent(ctx, cli, prefix, nodes[2], nil); !errors.Is(res.err, cluster.ErrUndecided) {
		t.Fatalf("n3 with etcd down: %+v, want ErrUndecided", res)
	}
	if s := nodes[2].state(t); s != "old" {
		t.Fatalf("n3 with etcd down holds %s, want old", s)
	}
	srv.Restart()
	if res := runAgentAgain(ctx, cli, prefix, nodes[2]); res.err != nil {
		t.Fatalf("n3 with etcd back: %+v", res)
	}
	wg.Wait()
	if coordErr != nil {
		t.Errorf("coordinator: %v", coordErr)
	}
	c := &tally{}
	c.check(t, cli, prefix, name, nodes, "etcd restarted")
	if c.new != 1 {
		t.Errorf("%v, want all new", c)
	}
}

// TestCluster_PreparedForAnEarlierAttemptRollsBack: n1 is prepared for
// attempt 1 and crashes before its vote; a new attempt (another plan) is
// published, which decides attempt 1 abort. n1's new agent rolls its
// attempt-1 run back (its vote there is refused: the decision is made),
// then restores attempt 2 with the others.
func TestCluster_PreparedForAnEarlierAttemptRollsBack(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix, name = "/s/", "s"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plan1 := planOf(name, nodes)
	go runCoordinator(ctx, cli, prefix, plan1, cluster.CoordinateOptions{PrepareTimeout: time.Minute, Wait: 5 * time.Second})
	if res := runAgent(ctx, cli, prefix, nodes[0], crashSet(t, "cluster.agent.before-vote:crash")); res.crash == "" {
		t.Fatalf("n1 did not crash before its vote: %+v", res)
	}
	plan2 := planOf(name, nodes)
	plan2.Nodes[1].Mode = "auto" // another plan: a new attempt
	var wg sync.WaitGroup
	var rep *cluster.Report
	var coordErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep, _, coordErr = runCoordinator(ctx, cli, prefix, plan2, cluster.CoordinateOptions{PrepareTimeout: time.Minute, Wait: time.Minute})
	}()
	waitAttempt(ctx, t, cli, prefix, name, 2)
	wg.Add(2)
	for _, n := range nodes {
		go func() {
			defer wg.Done()
			if res := runAgent(ctx, cli, prefix, n, nil); res.err != nil {
				t.Errorf("agent %s: %+v", n.id, res)
			}
		}()
	}
	wg.Wait()
	if coordErr != nil || rep.Attempt != 2 {
		t.Fatalf("coordinator: attempt %d, %v", rep.Attempt, coordErr)
	}
	d, err := cli.Get(ctx, prefix+"restores/"+name+"/1/decision")
	if err != nil || len(d.Kvs) == 0 || string(d.Kvs[0].Value[:5]) != "abort" {
		t.Fatalf("attempt 1 decision %v, %v; want abort", d, err)
	}
	c := &tally{}
	c.check(t, cli, prefix, name, nodes, "attempt 2")
	noPrepared(t, nodes, "attempt 2")
}

// waitAttempt polls until the restore's current attempt is a.
func waitAttempt(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix, name string, a int) {
	t.Helper()
	want := fmt.Sprint(a)
	for ctx.Err() == nil {
		if resp, err := cli.Get(ctx, prefix+"attempts/"+name); err == nil && len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("attempt %d of %s never published", a, name)
}

// runAgentAgain runs an agent as an operator would once etcd is back: a
// client still reconnecting may make the first attempts say undecided
// (exit 5), and the operator runs the agent again.
func runAgentAgain(ctx context.Context, cli *clientv3.Client, prefix string, n *node) result {
	var res result
	for range 5 {
		if res = runAgent(ctx, cli, prefix, n, nil); !errors.Is(res.err, cluster.ErrUndecided) {
			break
		}
	}
	return res
}
