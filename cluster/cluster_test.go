package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// scenario is one cluster restore run with its faults.
type scenario struct {
	nodes     int
	crashNode int    // the node whose agent crashes (index)
	spec      string // its first instance's fault spec
	spec2     string // its second instance's (a crash during recovery)
	coordSpec string // the coordinator's
	abortNode int    // >= 0: this node's plan entry names another db: it votes abort
	corrupt   int    // >= 0: this node's backup has a corrupt table
	nodeSpec  map[int]string
	// abortLate holds the abort node's agent back until the crash node
	// has voted: the abort then comes while that node is prepared.
	abortLate bool
}

var caseNo atomic.Int64

// run runs sc against the etcd at cli, each case under its own prefix,
// and checks and counts the result. It returns the decision.
func (sc scenario) run(t *testing.T, cli *clientv3.Client, c *tally) string {
	t.Helper()
	n := caseNo.Add(1)
	prefix := fmt.Sprintf("/case%d/", n)
	name := fmt.Sprintf("r%d", n)
	nodes := newNodes(t, sc.nodes)
	plan := planOf(name, nodes)
	if sc.abortNode >= 0 {
		plan.Nodes[sc.abortNode].DB = filepath.Join(t.TempDir(), "elsewhere")
	}
	if sc.corrupt >= 0 {
		corruptTable(t, nodes[sc.corrupt].backup)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	what := fmt.Sprintf("case %d (node %s: %q then %q; coordinator %q; abort node %d; corrupt %d)", n, nodes[sc.crashNode].id, sc.spec, sc.spec2, sc.coordSpec, sc.abortNode, sc.corrupt)

	start := time.Now()
	defer func() { t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond)) }()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	var fired atomic.Int32 // crashes that happened (a point may not be on this case's path)
	defer func() { c.crashes(int(fired.Load())) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		o := cluster.CoordinateOptions{PrepareTimeout: 40 * time.Second, Wait: 80 * time.Second, Faults: crashSet(t, sc.coordSpec)}
		_, crash, err := runCoordinator(ctx, cli, prefix, plan, o)
		if crash != "" {
			fired.Add(1)
			o.Faults = nil
			_, _, err = runCoordinator(ctx, cli, prefix, plan, o)
		}
		if err != nil && !errors.Is(err, cluster.ErrAborted) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("coordinator: %v", err))
			mu.Unlock()
		}
	}()
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sc.abortLate && i == sc.abortNode {
				if _, err := pollKey(ctx, cli, prefix+"restores/"+name+"/1/votes/"+nodes[sc.crashNode].id); err != nil {
					t.Errorf("%s: %v", what, err)
				}
			}
			specs := []string{sc.nodeSpec[i]}
			if i == sc.crashNode {
				specs = []string{sc.spec, sc.spec2, ""}
			}
			var res result
			for k, spec := range specs {
				res = runAgent(ctx, cli, prefix, nd, crashSet(t, spec))
				if res.crash != "" {
					fired.Add(1)
				}
				if res.crash == "" || k == len(specs)-1 {
					break
				}
			}
			if res.crash != "" || res.err != nil && !errors.Is(res.err, cluster.ErrAborted) {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("agent %s: crash %q, %v", nd.id, res.crash, res.err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range problems {
		t.Errorf("%s: %s", what, p)
	}
	c.check(t, cli, prefix, name, nodes, what)
	noPrepared(t, nodes, what)
	rep, err := cluster.Status(context.Background(), cli, prefix, name)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Decision
}

// corruptTable flips a byte in the middle of the backup's first table.
func corruptTable(t testing.TB, backup string) {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(backup, "*.sst"))
	if len(ssts) == 0 {
		t.Fatalf("no table in %s", backup)
	}
	b, err := os.ReadFile(ssts[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(ssts[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func plain(nodes int) scenario {
	return scenario{nodes: nodes, abortNode: -1, corrupt: -1}
}

// TestCluster_HappyPathCommitsEveryNode: 3 and 5 nodes, each agent with
// its own database and journal: every node ends new, the decision is
// commit, each outcome committed.
func TestCluster_HappyPathCommitsEveryNode(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	c := &tally{}
	for _, n := range []int{3, 5} {
		if d := plain(n).run(t, cli, c); d != "commit" {
			t.Errorf("%d nodes: decision %q, want commit", n, d)
		}
	}
	if c.new != 2 || c.mix != 0 {
		t.Errorf("%v, want 2 all-new", c)
	}
}

// TestCluster_OneNodeFailsEveryNodeKeepsItsDatabase: one node's source
// corrupt, one node out of disk space (ENOSPC injected into a copy), one
// node's plan naming another database than its own (it must vote abort,
// never restore there): the decision is abort and every node is old.
func TestCluster_OneNodeFailsEveryNodeKeepsItsDatabase(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	c := &tally{}
	corrupt := plain(3)
	corrupt.corrupt = 1
	nospace := plain(3)
	nospace.nodeSpec = map[int]string{2: "fs.write:enospc@2"}
	mismatch := plain(3)
	mismatch.abortNode = 0
	for name, sc := range map[string]scenario{"corrupt source": corrupt, "no space": nospace, "db mismatch": mismatch} {
		if d := sc.run(t, cli, c); !strings.HasPrefix(d, "abort") {
			t.Errorf("%s: decision %q, want abort", name, d)
		}
	}
	if c.old != 3 || c.mix != 0 {
		t.Errorf("%v, want 3 all-old", c)
	}
}

// TestAgent_ServesOneRestoreAfterAnother: agents without Once handle each
// published restore in turn (two names, one after the other) until
// stopped.
func TestAgent_ServesOneRestoreAfterAnother(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix = "/d/"
	stop := serve(t, srv, prefix, nodes...)
	for _, name := range []string{"first", "second"} {
		mustCommit(t, cli, prefix, name, nodes, cluster.CoordinateOptions{PrepareTimeout: time.Minute})
	}
	stop()
	for _, n := range nodes {
		if s := n.state(t); s != "new" {
			t.Errorf("node %s: %s", n.id, s)
		}
	}
}

// TestCluster_SameNameElsewhereIsAnotherAttempt: attempt 1 of a restore
// named "same" under one prefix, then under another (as after an etcd
// reset): the nodes' journals hold a run of "same" attempt 1 already, yet
// each node restores again and votes; its runs are told apart by the
// attempt's id.
func TestCluster_SameNameElsewhereIsAnotherAttempt(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	for _, prefix := range []string{"/a/", "/b/"} {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if res := runAgent(context.Background(), cli, prefix, n, nil); res.err != nil {
					t.Errorf("%s agent %s: %v", prefix, n.id, res.err)
				}
			}()
		}
		rep, err := cluster.Coordinate(context.Background(), cli, prefix, planOf("same", nodes), cluster.CoordinateOptions{PrepareTimeout: 20 * time.Second})
		wg.Wait()
		if err != nil || rep.Outcome != cluster.Committed {
			t.Fatalf("%s: %+v, %v", prefix, rep, err)
		}
	}
	for _, n := range nodes {
		runs, err := kvrflow.PreparedRuns(kvrflow.Options{DB: n.db})
		if err != nil || len(runs) != 0 {
			t.Errorf("node %s: %v %v", n.id, runs, err)
		}
	}
}
