package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

func init() { cluster.RequestTimeout = 2 * time.Second }

// node is one node of a test cluster: its database (old contents) and a
// backup of other contents (new), each in its own directory.
type node struct {
	id, db, backup string
	old, new       map[string]string
}

// newNodes makes n nodes under a fresh temporary directory.
func newNodes(t testing.TB, n int) []*node {
	t.Helper()
	root := t.TempDir()
	var out []*node
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("n%d", i+1))
		nd := &node{id: fmt.Sprintf("n%d", i+1), db: filepath.Join(dir, "db"), backup: filepath.Join(dir, "backup")}
		src := filepath.Join(dir, "src")
		nd.new = testutil.MakeDB(t, nil, src, uint64(100+i), 60)
		if _, err := kvrflow.Backup(context.Background(), src, nd.backup, nil); err != nil {
			t.Fatal(err)
		}
		nd.old = testutil.MakeDB(t, nil, nd.db, uint64(1+i), 40)
		out = append(out, nd)
		// Every node's journal, when the test ends: nothing in flight,
		// every run's events a chain.
		t.Cleanup(func() {
			l, err := steps.NewLayout(nd.db)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := os.Stat(l.Journal()); err != nil {
				return
			}
			if err := check.Journal(l.Journal()); err != nil {
				t.Errorf("node %s: %v", nd.id, err)
			}
			// And every transition one of the restore workflow's (audit
			// replays prepared and the cluster's tags).
			if v, err := audit.Verify(l.Journal(), nil); err != nil || !v.OK() {
				t.Errorf("node %s: journal verify: %+v, %v", nd.id, v, err)
			}
		})
	}
	return out
}

func planOf(name string, nodes []*node) *cluster.Plan {
	p := &cluster.Plan{Name: name}
	for _, n := range nodes {
		p.Nodes = append(p.Nodes, cluster.PlanNode{ID: n.id, DB: n.db, From: n.backup, Mode: "copy"})
	}
	return p
}

// state is what a node's database holds: "old", "new", or "other".
func (n *node) state(t testing.TB) string {
	t.Helper()
	kv, err := testutil.TryReadDB(nil, n.db)
	switch {
	case err != nil:
		return "other: " + err.Error()
	case testutil.Equal(kv, n.old):
		return "old"
	case testutil.Equal(kv, n.new):
		return "new"
	}
	return fmt.Sprintf("other: %d keys", len(kv))
}

// crashed is the panic of a crash fault point in tests: it ends the
// agent's or coordinator's goroutine as kill -9 ends a process (its
// deferred closes release its locks, as the kernel would).
type crashed struct{ point string }

// crashSet returns a fault set of spec whose crash action panics.
func crashSet(t testing.TB, spec string) *fault.Set {
	t.Helper()
	f, err := fault.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	f.SetCrash(func(p string) { panic(crashed{p}) })
	return f
}

// result is how one agent or coordinator instance ended.
type result struct {
	rep   *cluster.NodeReport
	err   error
	crash string // the point it crashed at, if it did
}

// runAgent runs one agent instance for n (Once) to its end.
func runAgent(ctx context.Context, cli *clientv3.Client, prefix string, n *node, faults *fault.Set) (res result) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crashed)
			if !ok {
				panic(r)
			}
			res.crash = c.point
		}
	}()
	log := zerolog.Nop()
	rep, err := cluster.Agent(ctx, cli, prefix, cluster.AgentOptions{Node: n.id, DB: n.db, Once: true,
		Restore: kvrflow.Options{Faults: faults, Log: &log}, Log: log})
	return result{rep: rep, err: err}
}

// runCoordinator runs Coordinate to its end.
func runCoordinator(ctx context.Context, cli *clientv3.Client, prefix string, plan *cluster.Plan, o cluster.CoordinateOptions) (rep *cluster.Report, crash string, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crashed)
			if !ok {
				panic(r)
			}
			crash = c.point
		}
	}()
	rep, err = cluster.Coordinate(ctx, cli, prefix, plan, o)
	return rep, "", err
}

// tally counts cluster restores by what the nodes ended with.
type tally struct {
	mu                   sync.Mutex
	total, old, new, mix int
	crashed, twice       int // cases in which a crash happened; two
}

func (c *tally) String() string {
	return fmt.Sprintf("%d cases (%d with a crash, %d with two): %d all-old, %d all-new, %d mixed", c.total, c.crashed, c.twice, c.old, c.new, c.mix)
}

// crashes counts a case's crashes.
func (c *tally) crashes(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		c.crashed++
	}
	if n > 1 {
		c.twice++
	}
}

// check asserts every node old or every node new, new exactly when etcd's
// decision is commit, and counts the case.
func (c *tally) check(t testing.TB, cli *clientv3.Client, prefix, name string, nodes []*node, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := cluster.Status(ctx, cli, prefix, name)
	if err != nil {
		t.Fatalf("%s: status: %v", what, err)
	}
	states := map[string]int{}
	var each []string
	for _, n := range nodes {
		s := n.state(t)
		states[s]++
		each = append(each, n.id+"="+s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	want := "old"
	if rep.Decision == "commit" {
		want = "new"
	}
	switch {
	case states["old"] == len(nodes):
		c.old++
	case states["new"] == len(nodes):
		c.new++
	default:
		c.mix++
	}
	if states[want] != len(nodes) {
		t.Errorf("%s: decision %q, nodes %v; want every node %s\n%s", what, rep.Decision, each, want, etcdtest.Dump(cli, prefix))
	}
	for _, nr := range rep.Nodes {
		wantOutcome := "rolled_back"
		if want == "new" {
			wantOutcome = "committed"
		}
		if nr.Outcome != wantOutcome {
			t.Errorf("%s: node %s outcome %q, want %q", what, nr.ID, nr.Outcome, wantOutcome)
		}
	}
}

// noPrepared asserts that no node has a run left in flight.
func noPrepared(t testing.TB, nodes []*node, what string) {
	t.Helper()
	for _, n := range nodes {
		runs, err := kvrflow.PreparedRuns(kvrflow.Options{DB: n.db})
		if err != nil || len(runs) != 0 {
			t.Errorf("%s: node %s: prepared runs %v, %v", what, n.id, runs, err)
		}
	}
}

// serve runs a long-running agent (not Once) for each of nodes, each on
// its own client as separate processes would be, until the returned stop
// is called; an agent that ends any other way fails the test.
func serve(t *testing.T, srv *etcdtest.Server, prefix string, nodes ...*node) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		cli := srv.Client(t)
		wg.Go(func() {
			_, err := cluster.Agent(ctx, cli, prefix, cluster.AgentOptions{Node: n.id, DB: n.db})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("agent %s (%s): %v, want it to serve until cancelled", n.id, n.db, err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// mustCommit coordinates the restore name of nodes and fails the test
// unless every node committed.
func mustCommit(t *testing.T, cli *clientv3.Client, prefix, name string, nodes []*node, o cluster.CoordinateOptions) {
	t.Helper()
	rep, err := cluster.Coordinate(context.Background(), cli, prefix, planOf(name, nodes), o)
	if err != nil || rep.Outcome != cluster.Committed {
		t.Fatalf("%s: %+v, %v", name, rep, err)
	}
}

// twinPlan is, for the three nodes given, the plan of restore name over
// the first two with no db (so any agent that says it is n1 takes n1's
// part), and a twin: a second n1 on the third node's database, whose new
// content would be n1's.
func twinPlan(name string, nodes []*node) (*cluster.Plan, *node) {
	plan := planOf(name, nodes[:2])
	for i := range plan.Nodes {
		plan.Nodes[i].DB = ""
	}
	return plan, &node{id: "n1", db: nodes[2].db, old: nodes[2].old, new: nodes[0].new}
}
