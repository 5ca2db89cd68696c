package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// requests counts one client's unary etcd requests by method (Range,
// Txn, Put, ...): watches share one stream and are not counted. A Range
// of every restore (the attempts/ directory) is counted as "Range
// attempts/", one of a restore's current attempt key as "Range attempt".
type requests struct {
	mu sync.Mutex
	by map[string]int
}

func (r *requests) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	m := method[strings.LastIndex(method, "/")+1:]
	if rr, ok := req.(*etcdserverpb.RangeRequest); ok {
		switch key := string(rr.Key); {
		case strings.HasSuffix(key, "/attempts/"):
			m = "Range attempts/"
		case strings.Contains(key, "/attempts/"):
			m = "Range attempt"
		}
	}
	r.mu.Lock()
	r.by[m]++
	r.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

// take returns the counts since the last take, and their total.
func (r *requests) take() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	by, n := r.by, 0
	for _, c := range by {
		n += c
	}
	r.by = map[string]int{}
	return by, n
}

func (r *requests) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for m, c := range r.by {
		s = append(s, fmt.Sprintf("%s %d", m, c))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// countingClient is a client of srv whose unary requests r counts.
func countingClient(t *testing.T, srv *etcdtest.Server, r *requests) *clientv3.Client {
	t.Helper()
	r.by = map[string]int{}
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(r.intercept)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestCluster_RequestsPerRestore bounds what one cluster restore of N
// nodes asks of etcd (DESIGN.md "Cost at scale"), with the agents
// running: each agent reads the attempt (1), votes and reads the tally
// in one Txn (1), reads the decision with the votes when its watch brings
// it (1; the last voter, which wrote it, does not) and records its
// outcome and reads its vote in one Txn (1); the last voter also writes
// the commit. The coordinator publishes a new name in one Txn (no read of
// the current attempt first), reads the tally once (it leaves the commit
// to the last voter, and has every vote from its watch when the decision
// comes), and reads the report when it starts waiting for the outcomes
// and when every node has one: 4, never one per vote or per outcome; and
// no agent reads every restore etcd holds when it wakes.
func TestCluster_RequestsPerRestore(t *testing.T) {
	srv := etcdtest.Start(t)
	const n = 5
	nodes := newNodes(t, n)
	const prefix = "/cost/"
	agents := serveCounted(t, srv, prefix, nodes)
	coord := &requests{}
	cli := countingClient(t, srv, coord)
	// A first restore, not counted: the agents' start (a Get of every
	// restore, the watch) is behind them. Then one under another name.
	mustCommit(t, cli, prefix, "warm", nodes, cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	for _, r := range append(agents, coord) {
		r.take()
	}
	mustCommit(t, cli, prefix, "counted", nodes, cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	// The last agent's outcome is in etcd before Coordinate returns, but
	// its request count may lag by a moment.
	time.Sleep(100 * time.Millisecond)
	total := 0
	for i, r := range agents {
		desc := r.String()
		by, c := r.take()
		total += c
		if c > 4 || by["Range attempts/"] > 0 {
			t.Errorf("agent %s: %d requests (%s); want at most 4, and no Range of attempts/ (a Get of every restore on each wake)", nodes[i].id, c, desc)
		}
	}
	if total > 4*n {
		t.Errorf("agents: %d requests in all, want at most 4 per node (%d)", total, 4*n)
	}
	desc := coord.String()
	if by, c := coord.take(); c > 4 || by["Range attempt"] > 0 {
		t.Errorf("coordinator: %d requests (%s); want at most 4, whatever the number of nodes, and no Range of attempts/NAME (a read of the current attempt before a new name's publish)", c, desc)
	}
	t.Logf("agents %d requests for %d nodes; coordinator %s", total, n, desc)
}

// TestCluster_AbortedRestoreIsNoFailure: a restore decided abort (one
// node's source does not exist) is done for the running agents as a
// committed one is: they kept their databases, there is nothing to try
// again. They must not take it for a failure (wait, recover, and read
// every restore etcd holds again, as after etcd stopped answering): the
// next restore is served from the watch's changes alone, no Range of attempts/
func TestCluster_AbortedRestoreIsNoFailure(t *testing.T) {
	srv := etcdtest.Start(t)
	const n = 2
	nodes := newNodes(t, n)
	const prefix = "/ab/"
	agents := serveCounted(t, srv, prefix, nodes)
	cli := srv.Client(t)
	o := cluster.CoordinateOptions{PrepareTimeout: time.Minute}
	mustCommit(t, cli, prefix, "warm", nodes, o)
	for _, r := range agents {
		r.take()
	}
	bad := planOf("aborted", nodes)
	bad.Nodes[1].From = filepath.Join(t.TempDir(), "no-such-backup")
	if rep, err := cluster.Coordinate(context.Background(), cli, prefix, bad, o); !errors.Is(err, cluster.ErrAborted) {
		t.Fatalf("aborted: %+v, %v; want ErrAborted", rep, err)
	}
	mustCommit(t, cli, prefix, "after", nodes, o)
	for i, r := range agents {
		desc := r.String()
		if by, _ := r.take(); by["Range attempts/"] > 0 {
			t.Errorf("agent %s: %s; want no Range of attempts/ (a read of every restore, as after a failure)", nodes[i].id, desc)
		}
	}
	for _, nd := range nodes {
		if s := nd.state(t); s != "new" {
			t.Errorf("node %s: %s", nd.id, s)
		}
	}
}

// serveCounted runs a long-running agent for each node, each on a client
// whose requests the returned counter counts, until the test ends.
func serveCounted(t *testing.T, srv *etcdtest.Server, prefix string, nodes []*node) []*requests {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	agents := make([]*requests, len(nodes))
	for i, nd := range nodes {
		agents[i] = &requests{}
		cli := countingClient(t, srv, agents[i])
		wg.Go(func() {
			_, err := cluster.Agent(ctx, cli, prefix, cluster.AgentOptions{Node: nd.id, DB: nd.db})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("agent %s: %v, want it to serve until cancelled", nd.id, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return agents
}

// TestAgent_StartReadsOutcomesNotReports: an agent's start, with finished
// restores in etcd (kvrflow keeps them all), reads attempts/, this node's
// outcome key in each (one Txn), and the plans of those it has none in
// (one Txn): not the report of every restore etcd holds, one request each
// (an --once agent pays its start on every run).
func TestAgent_StartReadsOutcomesNotReports(t *testing.T) {
	srv := etcdtest.Start(t)
	nodes := newNodes(t, 2)
	const prefix = "/history/"
	cli := srv.Client(t)
	stop := serve(t, srv, prefix, nodes...)
	const past = 12
	for i := range past {
		// Half of them with both nodes, half with n2 alone: n1 has an
		// outcome in the first, and is no part of the others.
		mustCommit(t, cli, prefix, fmt.Sprintf("past-%d", i), nodes[i%2:], cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	}
	stop()
	r := &requests{}
	acli := countingClient(t, srv, r)
	done := make(chan error, 1)
	go func() {
		_, err := cluster.Agent(context.Background(), acli, prefix, cluster.AgentOptions{Node: nodes[0].id, DB: nodes[0].db, Once: true})
		done <- err
	}()
	// Named to come last: etcd returns attempts/ in key order, and an
	// --once agent stops at the first restore it has work in.
	mustCommit(t, cli, prefix, "zz-next", nodes[:1], cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	if err := <-done; err != nil {
		t.Fatalf("agent --once: %v", err)
	}
	desc := r.String()
	by, n := r.take()
	// Two Gets of attempts/ (before and after its watch opens), the
	// outcomes' Txn, the plans' Txn, then the new restore: its report,
	// the vote, the commit (it is the last voter), the outcome: 8. Before:
	// one report read per restore etcd held (18 here).
	if n > 9 || by["Range attempts/"] > 2 {
		t.Errorf("agent start with %d finished restores in etcd: %d requests (%s); want at most 9, whatever their number", past, n, desc)
	}
	t.Logf("%d requests: %s", n, desc)
}

// TestAgent_StartWithALowMaxTxnOpsServes: etcd runs with --max-txn-ops 8,
// so the start's batched read of this node's outcomes in 10 finished
// restores is refused. The agent falls back to reading each restore's
// report: an --once agent still serves the next restore, and takes no
// part in those it is done with or no part of.
func TestAgent_StartWithALowMaxTxnOpsServes(t *testing.T) {
	srv := etcdtest.Start(t, func(c *embed.Config) { c.MaxTxnOps = 8 })
	nodes := newNodes(t, 2)
	const prefix = "/lowops/"
	cli := srv.Client(t)
	stop := serve(t, srv, prefix, nodes...)
	for i := range 10 {
		mustCommit(t, cli, prefix, fmt.Sprintf("past-%d", i), nodes[i%2:], cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	}
	stop()
	r := &requests{}
	acli := countingClient(t, srv, r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cluster.Agent(ctx, acli, prefix, cluster.AgentOptions{Node: nodes[0].id, DB: nodes[0].db, Once: true})
		done <- err
	}()
	mustCommit(t, cli, prefix, "zz-next", nodes[:1], cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	if err := <-done; err != nil {
		t.Fatalf("agent --once: %v", err)
	}
	desc := r.String()
	// The refused Txn, then a report read (a Range of the attempt's keys)
	// for each of the 10 and for the new restore, whose vote and outcome
	// are Txns, besides the two Gets of attempts/.
	if by, n := r.take(); by["Range"] < 11 {
		t.Errorf("%d requests (%s): want the refused batch's fallback to read each restore", n, desc)
	}
	t.Logf("%s", desc)
}
