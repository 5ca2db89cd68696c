package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// waitKey waits until key exists in etcd and returns its value.
func waitKey(t *testing.T, ctx context.Context, cli *clientv3.Client, key string) string {
	t.Helper()
	v, err := pollKey(ctx, cli, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pollKey returns key's value once it exists, or an error when ctx ends
// first (waitKey for a goroutine other than the test's).
func pollKey(ctx context.Context, cli *clientv3.Client, key string) (string, error) {
	for {
		resp, err := cli.Get(ctx, key)
		if err == nil && len(resp.Kvs) > 0 {
			return string(resp.Kvs[0].Value), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w", key, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestHostile_ForgedCommitIsNotApplied: n1 votes prepared, n2 (no agent)
// never votes; a "commit" decision is then put into etcd by hand (not by
// the commit Txn, which needs every vote prepared). n1's agent must not
// commit on it: its run stays prepared (ErrUndecided), its database old.
func TestHostile_ForgedCommitIsNotApplied(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix, name = "/f/", "f"
	plan := planOf(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: 50 * time.Second})
	done := make(chan result, 1)
	go func() { done <- runAgent(ctx, cli, prefix, nodes[0], nil) }()
	waitKey(t, ctx, cli, prefix+"restores/f/1/votes/n1")
	if _, err := cli.Put(ctx, prefix+"restores/f/1/decision", "commit"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if !errors.Is(res.err, cluster.ErrUndecided) {
		t.Errorf("agent on a forged commit: %+v; want ErrUndecided", res)
	}
	if s := nodes[0].state(t); s != "old" {
		t.Errorf("n1 is %s after a forged commit; want old\n%s", s, etcdtest.Dump(cli, prefix))
	}
	if runs, err := kvrflow.PreparedRuns(kvrflow.Options{DB: nodes[0].db}); err != nil || len(runs) != 1 {
		t.Errorf("n1's prepared runs: %v, %v; want its run left prepared", runs, err)
	}
	// Let the cleanup's checks see a finished journal.
	if _, err := kvrflow.Resolve(ctx, kvrflow.Options{DB: nodes[0].db}, false); err != nil {
		t.Fatal(err)
	}
}

// TestHostile_RewrittenPlanIsNotTrusted: n1 votes prepared and its agent
// dies; the published plan is then rewritten in etcd to name n1 alone.
// n1's next agent must not take the rewritten plan (with it, n1's vote
// alone would make the commit): its run stays prepared, its database old.
func TestHostile_RewrittenPlanIsNotTrusted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix, name = "/g/", "g"
	plan := planOf(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cluster.Coordinate(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Millisecond}); !errors.Is(err, cluster.ErrUndecided) {
		t.Fatalf("publish: %v", err)
	}
	if res := runAgent(ctx, cli, prefix, nodes[0], crashSet(t, cluster.PointAfterVote+":crash")); res.crash == "" {
		t.Fatalf("agent did not crash after its vote: %+v", res)
	}
	key := prefix + "restores/g/1/plan"
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	p := rec["plan"].(map[string]any)
	p["nodes"] = p["nodes"].([]any)[:1]
	b, _ := json.Marshal(rec)
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		t.Fatal(err)
	}
	res := runAgent(ctx, cli, prefix, nodes[0], nil)
	if !errors.Is(res.err, cluster.ErrUndecided) {
		t.Errorf("agent with a rewritten plan: %+v; want ErrUndecided", res)
	}
	if s := nodes[0].state(t); s != "old" {
		t.Errorf("n1 is %s with a rewritten plan; want old\n%s", s, etcdtest.Dump(cli, prefix))
	}
	if _, err := kvrflow.Resolve(ctx, kvrflow.Options{DB: nodes[0].db}, false); err != nil {
		t.Fatal(err)
	}
}

// TestHostile_NestedPrefixIsNotARestore: another kvrflow uses a prefix
// inside this one's attempts directory (/n/attempts/), so this agent's
// watch sees its key /n/attempts/attempts/r. That key is no restore of
// this prefix: the agent skips it and performs the real one.
func TestHostile_NestedPrefixIsNotARestore(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	other := &cluster.Plan{Name: "r", Nodes: []cluster.PlanNode{{ID: nodes[0].id, From: "/nonexistent"}}}
	if _, err := cluster.Coordinate(ctx, cli, "/n/attempts/", other, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Millisecond}); !errors.Is(err, cluster.ErrUndecided) {
		t.Fatalf("publish under the nested prefix: %v", err)
	}
	go runCoordinator(ctx, cli, "/n/", planOf("r", nodes), cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: 50 * time.Second})
	waitKey(t, ctx, cli, "/n/restores/r/1/plan")
	res := runAgent(ctx, cli, "/n/", nodes[0], nil)
	if res.err != nil {
		t.Errorf("agent: %+v; want the restore committed", res)
	}
	if s := nodes[0].state(t); s != "new" {
		t.Errorf("n1 is %s; want new\n%s", s, etcdtest.Dump(cli, "/n/"))
	}
}

// TestHostile_PublishNeverReusesAnAttempt: attempts/NAME is deleted by
// hand (a "cleanup") while the attempt's keys stay. Publishing again must
// not write a new plan over attempt 1, whose decision and votes would then
// seem to be the new attempt's: it is refused, attempt 1 untouched.
func TestHostile_PublishNeverReusesAnAttempt(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan := &cluster.Plan{Name: "p", Nodes: []cluster.PlanNode{{ID: "a", From: "/x"}}}
	if _, err := cluster.Coordinate(ctx, cli, "/h/", plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Millisecond}); !errors.Is(err, cluster.ErrUndecided) {
		t.Fatalf("publish: %v", err)
	}
	if _, err := cli.Put(ctx, "/h/restores/p/1/decision", "commit"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/h/attempts/p"); err != nil {
		t.Fatal(err)
	}
	_, err := cluster.Coordinate(ctx, cli, "/h/", plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Second, NewAttempt: true})
	if !errors.Is(err, cluster.ErrUntrusted) || errors.Is(err, cluster.ErrUndecided) {
		t.Errorf("publish over an existing attempt: %v; want ErrUntrusted (nothing published), not undecided", err)
	}
	resp, err := cli.Get(ctx, "/h/restores/p/1/plan")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Version != 1 {
		t.Errorf("attempt 1's plan after the second publish: %v, %v; want it untouched", resp, err)
	}
}

// TestHostile_TwoAgentsForOneNode: two agents run as node n1 on two
// databases (a copied configuration; the plan gives no db). Only one of
// them can be the vote n1 cast: the other's database is never replaced
// (it stays old), and the cluster ends all-old or all-new over the plan's
// nodes (the first agent's database and n2's).
func TestHostile_TwoAgentsForOneNode(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix, name = "/d/", "d"
	plan, twin := twinPlan(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: 50 * time.Second})
	first := make(chan result, 1)
	go func() { first <- runAgent(ctx, cli, prefix, nodes[0], nil) }()
	waitKey(t, ctx, cli, prefix+"restores/d/1/votes/n1")
	second := make(chan result, 1)
	go func() { second <- runAgent(ctx, cli, prefix, twin, nil) }()
	// n2 votes last, after the twin had time to prepare and vote (the
	// checks below hold whichever comes first).
	r2 := runAgent(ctx, cli, prefix, nodes[1], crashSet(t, cluster.PointBeforeVote+":delay=2s"))
	r1, rt := <-first, <-second
	t.Logf("n1: %v; n2: %v; twin: %v", r1.err, r2.err, rt.err)
	if s := twin.state(t); s != "old" {
		t.Errorf("the twin's database is %s; want old (it is not the node that voted)\n%s", s, etcdtest.Dump(cli, prefix))
	}
	if a, b := nodes[0].state(t), nodes[1].state(t); a != b {
		t.Errorf("n1 %s, n2 %s: mixed", a, b)
	}
	resp, err := cli.Get(ctx, prefix+"restores/d/1/voters/n1")
	if err != nil || len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != len("run ")+64 {
		t.Errorf("n1's voter: %v, %v; want run and its first record's hash", resp, err)
	}
}

// TestHostile_TwinRecoveredLeavesTheNodesOutcome: a second agent for n1
// (another database) dies before its vote; n1 and n2 commit. The twin's
// next start rolls its run back (its vote would not be its own) and must
// not write n1's outcome over the real n1's "committed".
func TestHostile_TwinRecoveredLeavesTheNodesOutcome(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix, name = "/tw/", "tw"
	plan, twin := twinPlan(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: 50 * time.Second})
	waitKey(t, ctx, cli, prefix+"restores/tw/1/plan")
	if res := runAgent(ctx, cli, prefix, twin, crashSet(t, cluster.PointBeforeVote+":crash")); res.crash == "" {
		t.Fatalf("the twin did not crash before its vote: %+v", res)
	}
	first := make(chan result, 1)
	go func() { first <- runAgent(ctx, cli, prefix, nodes[0], nil) }()
	if r := runAgent(ctx, cli, prefix, nodes[1], nil); r.err != nil {
		t.Fatalf("n2: %+v", r)
	}
	if r := <-first; r.err != nil {
		t.Fatalf("n1: %+v", r)
	}
	r := runAgent(ctx, cli, prefix, twin, nil)
	if !errors.Is(r.err, cluster.ErrAborted) {
		t.Errorf("the twin's agent: %v; want ErrAborted (its database kept)", r.err)
	}
	if s := twin.state(t); s != "old" {
		t.Errorf("the twin's database is %s; want old", s)
	}
	if v := waitKey(t, ctx, cli, prefix+"restores/tw/1/outcome/n1"); v != "committed" {
		t.Errorf("n1's outcome after the twin's recovery: %q, want committed\n%s", v, etcdtest.Dump(cli, prefix))
	}
	allHoldNew := nodes[0].state(t) == "new" && nodes[1].state(t) == "new"
	if !allHoldNew {
		t.Errorf("n1 %s, n2 %s; want both new", nodes[0].state(t), nodes[1].state(t))
	}
}

// TestHostile_RepublishedAfterCleanupIsServed: long-running agents serve
// "first", then "second" (whose wake makes them read "first" again, with
// nothing left to do there); the operator then deletes everything under
// the prefix (an etcdctl del --prefix cleanup) and publishes "first"
// again: attempt 1 once more, but a new attempt (another id, another
// plan key). The agents must serve it, not take it for the attempt 1
// they had nothing more to do in.
func TestHostile_RepublishedAfterCleanupIsServed(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix = "/c/"
	defer serve(t, srv, prefix, nodes...)()
	o := cluster.CoordinateOptions{PrepareTimeout: 10 * time.Second}
	mustCommit(t, cli, prefix, "first", nodes, o)
	mustCommit(t, cli, prefix, "second", nodes, o)
	if _, err := cli.Delete(context.Background(), prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, cli, prefix, "first", nodes, o)
}

// TestHostile_EtcdRestartedUnderIdleAgents: long-running agents wait
// for a restore (their watch open) when etcd stops, stays down a while,
// then restarts; the agents' clients reconnect on their own. A restore
// published then must be served by both (no watch left ended for ever, no
// agent exited), before and after a compaction of etcd's history.
func TestHostile_EtcdRestartedUnderIdleAgents(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix = "/r/"
	defer serve(t, srv, prefix, nodes...)()
	o := cluster.CoordinateOptions{PrepareTimeout: 15 * time.Second, Wait: 20 * time.Second}
	mustCommit(t, cli, prefix, "before", nodes, o)
	srv.Stop()
	time.Sleep(time.Second) // the agents' streams see it down and retry
	srv.Restart()
	for { // the coordinator's client reconnected (its own backoff)
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(rctx, "/")
		rcancel()
		if err == nil {
			break
		}
	}
	mustCommit(t, cli, prefix, "after-restart", nodes, o)
	resp, err := cli.Get(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, cli, prefix, "after-compaction", nodes, o)
}

// TestHostile_LongRunningAgentsFollowANewAttempt: long-running agents
// n1 and n2 are prepared in attempt 1 of "re", which waits for n3 (no
// agent); the operator publishes attempt 2 of the same name without n3.
// Attempt 1 is decided abort (superseded): the agents roll it back, then
// serve attempt 2, which commits.
func TestHostile_LongRunningAgentsFollowANewAttempt(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix, name = "/na/", "re"
	defer serve(t, srv, prefix, nodes[:2]...)()
	first := make(chan error, 1)
	go func() {
		_, err := cluster.Coordinate(context.Background(), cli, prefix, planOf(name, nodes), cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: 5 * time.Second})
		first <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	waitKey(t, wctx, cli, prefix+"restores/"+name+"/1/votes/n1")
	waitKey(t, wctx, cli, prefix+"restores/"+name+"/1/votes/n2")
	rep, err := cluster.Coordinate(context.Background(), cli, prefix, planOf(name, nodes[:2]), cluster.CoordinateOptions{PrepareTimeout: 20 * time.Second, Wait: 30 * time.Second, NewAttempt: true})
	if err != nil || rep.Outcome != cluster.Committed || rep.Attempt != 2 {
		t.Fatalf("attempt 2: %+v, %v", rep, err)
	}
	if err := <-first; err == nil {
		t.Errorf("attempt 1's coordinator: nil error, want it undecided or superseded")
	}
	for _, n := range nodes[:2] {
		if s := n.state(t); s != "new" {
			t.Errorf("node %s: %s", n.id, s)
		}
	}
	if s := nodes[2].state(t); s != "old" {
		t.Errorf("node n3 (no agent): %s", s)
	}
}

// TestHostile_TwoLongRunningAgentsForOneNode: two long-running agents
// run as n1 (on two databases; the plan names no db, so both accept it),
// with n2's, through two restores one after the other. Whichever votes
// first is n1 for that attempt: the other's vote is refused and its run
// rolled back (and, if nothing is decided yet, it decides abort). A
// restore decided commit ends with n2 new and one of n1's two databases
// new (in the first restore, never both: each was old); one decided
// abort leaves every database as it was before it (the second restore's
// sources are the first's: a node new after the first stays new); every
// database is old or new, never anything else; and every agent still
// serves when the test stops them.
func TestHostile_TwoLongRunningAgentsForOneNode(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix = "/lt/"
	_, twin := twinPlan("", nodes)
	defer serve(t, srv, prefix, nodes[0], nodes[1], twin)()
	before := [3]string{"old", "old", "old"} // n1, its twin, n2
	for _, name := range []string{"one", "two"} {
		plan, _ := twinPlan(name, nodes)
		rep, err := cluster.Coordinate(context.Background(), cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: 15 * time.Second, Wait: 20 * time.Second})
		t.Logf("%s: %+v, %v", name, rep, err)
		if rep == nil {
			t.Fatalf("%s: no report: %v", name, err)
		}
		settled := func(n *node) string {
			s := n.state(t)
			for end := time.Now().Add(30 * time.Second); strings.Contains(s, "temporarily unavailable") && time.Now().Before(end); s = n.state(t) {
				time.Sleep(50 * time.Millisecond) // the losing agent is still rolling back (its database locked)
			}
			return s
		}
		a, tw, b := settled(nodes[0]), settled(twin), settled(nodes[1])
		for _, s := range []string{a, tw, b} {
			if s != "old" && s != "new" {
				t.Fatalf("%s: n1 %s, n1's twin %s, n2 %s: want each old or new", name, a, tw, b)
			}
		}
		commit := rep.Decision == "commit"
		if commit && (b != "new" || a != "new" && tw != "new") || !commit && [3]string{a, tw, b} != before {
			t.Fatalf("%s: decided %q, but n1 %s, n1's twin %s, n2 %s (before it: %v): mixed", name, rep.Decision, a, tw, b, before)
		}
		before = [3]string{a, tw, b}
		if name == "one" && a == "new" && tw == "new" {
			t.Fatalf("%s: both of n1's databases were replaced", name)
		}
	}
}

// TestHostile_PublishedWhileAgentsAreBusyIsServed: running agents n1 and
// n2 are prepared in restore "busy", which waits for n3 (no agent) until
// its prepare timeout aborts it; "next" is published meanwhile. Its key's
// change reaches the agents' watch while they are busy: they must serve
// it once "busy" is done, from that change alone (an aborted restore is
// no failure: they do not read every restore again after it).
func TestHostile_PublishedWhileAgentsAreBusyIsServed(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 3)
	const prefix = "/bz/"
	agents := serveCounted(t, srv, prefix, nodes[:2])
	busy := make(chan error, 1)
	go func() {
		_, err := cluster.Coordinate(context.Background(), cli, prefix, planOf("busy", nodes), cluster.CoordinateOptions{PrepareTimeout: 2 * time.Second, Wait: 4 * time.Second})
		busy <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	waitKey(t, wctx, cli, prefix+"restores/busy/1/votes/n1")
	waitKey(t, wctx, cli, prefix+"restores/busy/1/votes/n2")
	for _, r := range agents {
		r.take() // their start (a Get of every restore) is behind them
	}
	rep, err := cluster.Coordinate(context.Background(), cli, prefix, planOf("next", nodes[:2]), cluster.CoordinateOptions{PrepareTimeout: 20 * time.Second, Wait: 30 * time.Second})
	if err != nil || rep.Outcome != cluster.Committed {
		t.Fatalf("next: %+v, %v", rep, err)
	}
	for i, r := range agents {
		if desc := r.String(); strings.Contains(desc, "Range attempts/") {
			t.Errorf("agent %s read every restore again (%s): want next served from its watch's change alone", nodes[i].id, desc)
		}
	}
	if err := <-busy; !errors.Is(err, cluster.ErrUndecided) && !errors.Is(err, cluster.ErrAborted) {
		t.Errorf("busy: %v, want aborted (or undecided: n3 never reports)", err)
	}
	for _, n := range nodes[:2] {
		if s := n.state(t); s != "new" {
			t.Errorf("node %s: %s", n.id, s)
		}
	}
}

// TestHostile_TwoCoordinatorsOneRestore: two coordinators are started
// for the same plan at once (an operator's retry, a second host): one
// publishes, the other follows that attempt. The last voter dies between
// its vote and its commit, so both coordinators, once their grace is
// over, race to write the commit: one does, the other reads it; both
// report the restore committed once the dead node's next agent has
// recovered its run.
func TestHostile_TwoCoordinatorsOneRestore(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix, name = "/2c/", "two"
	plan := planOf(name, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type coord struct {
		rep *cluster.Report
		err error
	}
	coords := make(chan coord, 2)
	for range 2 {
		cli := srv.Client(t)
		go func() {
			rep, _, err := runCoordinator(ctx, cli, prefix, plan, cluster.CoordinateOptions{PrepareTimeout: 30 * time.Second, Wait: 50 * time.Second})
			coords <- coord{rep, err}
		}()
	}
	waitKey(t, ctx, cli, prefix+"restores/"+name+"/1/plan")
	first := make(chan result, 1)
	go func() { first <- runAgent(ctx, cli, prefix, nodes[0], nil) }()
	waitKey(t, ctx, cli, prefix+"restores/"+name+"/1/votes/n1")
	if r := runAgent(ctx, cli, prefix, nodes[1], crashSet(t, cluster.PointAfterVote+":crash")); r.crash == "" {
		t.Fatalf("n2 did not crash after its vote: %+v", r)
	}
	if r := <-first; r.err != nil {
		t.Fatalf("n1: %+v", r)
	}
	if r := runAgent(ctx, cli, prefix, nodes[1], nil); r.err != nil {
		t.Fatalf("n2's next agent: %+v", r)
	}
	for range 2 {
		if c := <-coords; c.err != nil || c.rep.Outcome != cluster.Committed || c.rep.Attempt != 1 {
			t.Errorf("coordinator: %+v, %v; want attempt 1 committed", c.rep, c.err)
		}
	}
	c := &tally{}
	c.check(t, cli, prefix, name, nodes, "two coordinators")
	noPrepared(t, nodes, "two coordinators")
}

// TestHostile_EmptyOutcomeKeyIsNoOutcome: an outcome key put by hand
// with an empty value (etcdctl put KEY "") for a node that never ran is
// no outcome (a report shows none; handle acts): the node's agent, whose
// start finds the restore among every one etcd holds, must still take
// its part, not skip it for the key alone.
func TestHostile_EmptyOutcomeKeyIsNoOutcome(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 2)
	const prefix, name = "/eo/", "eo"
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	coord := make(chan error, 1)
	go func() {
		_, _, err := runCoordinator(ctx, cli, prefix, planOf(name, nodes), cluster.CoordinateOptions{PrepareTimeout: 15 * time.Second, Wait: 30 * time.Second})
		coord <- err
	}()
	waitKey(t, ctx, cli, prefix+"restores/"+name+"/1/plan")
	if _, err := cli.Put(ctx, prefix+"restores/"+name+"/1/outcome/n1", ""); err != nil {
		t.Fatal(err)
	}
	first := make(chan result, 1)
	go func() { first <- runAgent(ctx, cli, prefix, nodes[0], nil) }()
	r2 := runAgent(ctx, cli, prefix, nodes[1], nil)
	r1 := <-first
	if r1.err != nil || r2.err != nil {
		t.Fatalf("n1: %+v; n2: %+v; want both committed\n%s", r1, r2, etcdtest.Dump(cli, prefix))
	}
	if err := <-coord; err != nil {
		t.Errorf("coordinator: %v", err)
	}
	c := &tally{}
	c.check(t, cli, prefix, name, nodes, "empty outcome key")
}

// TestHostile_PublishRefusesABadAttemptKey: attempts/NAME put by hand to
// what kvrflow never writes (not a number, or not a positive one), no
// other key of the name in etcd. Publish must refuse it (ErrUntrusted,
// exit 2, not undecided: nothing is in flight) and write nothing: not an
// attempt 0 or -1 that no agent serves (agents take only attempts ≥ 1),
// nor one over the key.
func TestHostile_PublishRefusesABadAttemptKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan := &cluster.Plan{Name: "p", Nodes: []cluster.PlanNode{{ID: "a", From: "/x"}}}
	for _, v := range []string{"x", "-1", "0", " 1"} {
		if _, err := cli.Delete(ctx, "/ba/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, "/ba/attempts/p", v); err != nil {
			t.Fatal(err)
		}
		_, err := cluster.Coordinate(ctx, cli, "/ba/", plan, cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Second})
		if !errors.Is(err, cluster.ErrUntrusted) || errors.Is(err, cluster.ErrUndecided) {
			t.Errorf("attempts/p = %q: publish: %v; want ErrUntrusted (nothing published), not undecided", v, err)
		}
		resp, err := cli.Get(ctx, "/ba/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != v {
			t.Errorf("attempts/p = %q: after publish etcd holds\n%s; want only attempts/p, untouched", v, etcdtest.Dump(cli, "/ba/"))
		}
	}
}
