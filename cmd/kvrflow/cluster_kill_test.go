package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/clusterchaos"
	"github.com/kvrflow/kvrflow/internal/etcdproc"
)

// TestClusterRestore_RandomKillsLeaveAllOldOrAllNew: the kvrflow chaos
// --cluster harness: three nodes, each agent a process; in each iteration
// an agent (sometimes twice: again during its recovery) or the
// coordinator is killed with SIGKILL at a random moment and run again;
// afterwards every node holds the old database or every node the new
// one, the new one exactly when etcd's decision is commit, and no
// journal has a run in flight. 60 iterations, 4 with -short.
func TestClusterRestore_RandomKillsLeaveAllOldOrAllNew(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	iterations := 60
	if testing.Short() {
		iterations = 4
	}
	seed := uint64(time.Now().UnixNano())
	out, err := os.Create(filepath.Join(t.TempDir(), "children.log"))
	must(t, err)
	defer out.Close()
	h, err := clusterchaos.New(context.Background(), clusterchaos.Config{Self: kvrflowBin, Scratch: t.TempDir(), Nodes: 3,
		EtcdArgs: ce.args, Env: ce.env, Seed: seed, PrepareTimeout: time.Minute, Output: out})
	if err != nil {
		t.Fatalf("%v\nchildren's output: %s", err, out.Name())
	}
	var sum clusterchaos.Summary
	for i := 1; i <= iterations; i++ {
		it, err := h.Iteration(context.Background(), i)
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		sum.Add(it)
		t.Logf("%d: %s, killed %v: decision %q, %s", it.N, it.Kill, it.Killed, it.Decision, it.Result)
	}
	t.Logf("seed %d: %d iterations (%d killed while running): all-old %d, all-new %d, mixed %d; etcd committed %d, aborted %d",
		seed, sum.Iterations, sum.Killed, sum.AllOld, sum.AllNew, sum.Mixed, sum.Committed, sum.Aborted)
	if sum.Failures > 0 || sum.Mixed > 0 {
		dump, _ := os.ReadFile(out.Name())
		t.Fatalf("seed %d: %d invariant failures:\n%s\nchildren's output (last 8 KiB):\n%s", seed, sum.Failures,
			strings.Join(sum.FailureDetails, "\n"), tail(dump, 8<<10))
	}
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitVote polls cluster status until node id of restore name has
// voted, and returns the vote.
func (ce *clusterEnv) waitVote(t *testing.T, name, id string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if d, r := ce.statusOf(t, name); r.code == exitOK {
			if v := nodeReport(d.Nodes, id).Vote; v != "" {
				return v
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s did not vote in %s within a minute", id, name)
	return ""
}

// TestClusterRestore_CoordinatorKilledThenRunAgain: the coordinator is
// killed (SIGKILL) once the plan is published; the agents go on and
// decide without it; cluster restore run again with the same plan
// follows the same attempt (it does not restore twice) and reports the
// outcome: exit 0, every node new.
func TestClusterRestore_CoordinatorKilledThenRunAgain(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	nodes := newNodes(t, t.TempDir(), 3)
	plan := writePlan(t, "coord-kill", nodes, nil)
	coord := startChild(t, ce.env, append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "60s"}, ce.args...)...)
	agents := ce.agents(t, nodes[:1])
	ce.waitVote(t, "coord-kill", nodes[0].id)
	if !coord.kill() {
		t.Fatalf("the coordinator ended before the kill: %s", coord.wait(t))
	}
	agents = append(agents, ce.agents(t, nodes[1:])...)
	waitAgents(t, agents, exitOK)
	allHold(t, nodes, "new")
	r := ce.coordinate(t, plan)
	if r.code != exitOK {
		t.Fatalf("cluster restore run again: want exit 0, got %s", r)
	}
	var d clusterDoc
	decode(t, r, &d)
	if d.Decision != "commit" || d.Attempt != 1 {
		t.Errorf("run again: decision %q attempt %d, want commit of attempt 1 (followed, not restored twice)", d.Decision, d.Attempt)
	}
	allHold(t, nodes, "new")
}

// TestClusterAgent_PreparedNodeWithEtcdDownStaysPreparedThenFinishes: an
// agent killed after voting prepared (the others have not voted: no
// decision) is run again while etcd is stopped: it exits 5 and leaves the
// old database in place, never guessing; once etcd is back on the same
// data directory, it and the other agents finish: every node new.
func TestClusterAgent_PreparedNodeWithEtcdDownStaysPreparedThenFinishes(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	nodes := newNodes(t, t.TempDir(), 3)
	plan := writePlan(t, "etcd-down", nodes, nil)
	coord := startChild(t, ce.env, append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "120s"}, ce.args...)...)
	first := ce.agent(t, nodes[0])
	if v := ce.waitVote(t, "etcd-down", nodes[0].id); v != "prepared" {
		t.Fatalf("n1 voted %q, want prepared", v)
	}
	if !first.kill() {
		t.Fatalf("n1's agent ended before the kill: %s", first.wait(t))
	}
	ce.etcd.Stop()
	r := ce.agent(t, nodes[0], "--etcd-dial-timeout", "1s").wait(t)
	if r.code != exitInFlight {
		t.Fatalf("agent with etcd down: want exit 5, got %s", r)
	}
	if line := oneErrorLine(t, r); !strings.Contains(line, ce.etcd.Endpoint) || !strings.Contains(line, "the run stays prepared") {
		t.Errorf("the error does not name the endpoint, or does not say the run stays prepared: %s", line)
	}
	// A node with no run says so, rather than that a run stays prepared.
	r = ce.agent(t, nodes[1], "--etcd-dial-timeout", "1s").wait(t)
	if r.code != exitInFlight {
		t.Fatalf("n2's agent with etcd down: want exit 5, got %s", r)
	}
	if line := oneErrorLine(t, r); !strings.Contains(line, "no run of this node is prepared") {
		t.Errorf("n2 (no run) with etcd down: %s", line)
	}
	allHold(t, nodes, "old")
	must(t, ce.etcd.Restart())
	waitAgents(t, ce.agents(t, nodes), exitOK)
	allHold(t, nodes, "new")
	cr := coord.wait(t)
	if cr.code != exitOK && cr.code != exitInFlight {
		t.Errorf("the coordinator, which lost etcd for a while: want exit 0 (or 5: no outcome in its time), got %s", cr)
	}
	if s, _ := ce.statusOf(t, "etcd-down"); s.Decision != "commit" {
		t.Errorf("decision %q, want commit", s.Decision)
	}
}

// TestClusterRestore_EtcdKilledMidProtocol: etcd is killed (SIGKILL) at
// a random moment of a three-node restore and started again on the same
// data directory a moment later; agents that gave up (exit 5) are run
// again, as is the coordinator: afterwards every node is old or every
// node new, new exactly when etcd's decision is commit. 5 rounds, 2 with
// -short.
func TestClusterRestore_EtcdKilledMidProtocol(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	for round := 0; round < rounds; round++ {
		nodes := newNodes(t, t.TempDir(), 3)
		name := "etcd-kill-" + string(rune('a'+round))
		plan := writePlan(t, name, nodes, nil)
		agents := ce.agents(t, nodes)
		coord := startChild(t, ce.env, append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "60s"}, ce.args...)...)
		time.Sleep(time.Duration(round*150) * time.Millisecond)
		ce.etcd.Kill()
		time.Sleep(300 * time.Millisecond)
		must(t, ce.etcd.Restart())
		cr := ce.supervise(t, nodes, agents, coord, plan, name)
		s, _ := ce.statusOf(t, name)
		want := map[string]string{"commit": "new", "abort": "old"}[s.Decision]
		if want == "" {
			t.Fatalf("round %d: no decision after every agent ended; coordinator: %s", round, cr)
		}
		allHold(t, nodes, want)
		t.Logf("round %d: etcd killed after %d ms: decision %s, coordinator exit %d", round, round*150, s.Decision, cr.code)
	}
}

// supervise runs again, until each has an outcome (exit 0 or 1), every
// agent and the coordinator that ended without one (exit 5: etcd did not
// answer in time; or any other code while etcd was away), at most 5 times
// each, and returns the coordinator's last result.
func (ce *clusterEnv) supervise(t *testing.T, nodes []*cnode, agents []*child, coord *child, plan, name string) result {
	t.Helper()
	tries := map[*cnode]int{}
	coordTries := 0
	var cr result
	var lastCheck time.Time
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		pending := 0
		for i, a := range agents {
			if a == nil {
				continue
			}
			select {
			case <-a.done:
			default:
				pending++
				continue
			}
			r := a.wait(t)
			switch {
			case r.code == exitOK || r.code == exitRolledBack:
				agents[i] = nil
			case tries[nodes[i]] == 5:
				t.Fatalf("agent %s: no outcome after 5 runs: %s", nodes[i].id, r)
			default:
				tries[nodes[i]]++
				agents[i] = ce.agent(t, nodes[i])
				pending++
			}
		}
		if coord != nil {
			select {
			case <-coord.done:
				cr = coord.wait(t)
				coord = nil
				if cr.code != exitOK && cr.code != exitRolledBack {
					if coordTries == 5 {
						t.Fatalf("coordinator: no outcome after 5 runs: %s", cr)
					}
					coordTries++
					coord = startChild(t, ce.env, append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "60s"}, ce.args...)...)
				}
			default:
			}
		}
		if pending == 0 && coord == nil {
			return cr
		}
		if pending == 0 && time.Since(lastCheck) > time.Second {
			// Every agent ended, the coordinator waits: an agent that
			// could not record its outcome while etcd was away is run
			// again, as cluster status advises (it records the outcome
			// its journal holds).
			lastCheck = time.Now()
			if d, r := ce.statusOf(t, name); r.code == exitOK && d.Decision != "" {
				for i, c := range nodes {
					if nodeReport(d.Nodes, c.id).Outcome == "" && tries[c] < 5 {
						t.Logf("node %s has no outcome in etcd after its agent ended: running it again", c.id)
						tries[c]++
						agents[i] = ce.agent(t, c)
					}
				}
			}
		}
	}
	var still []string
	for _, a := range append(agents, coord) {
		if a != nil {
			a.kill() // first: its output is then read without a race
			still = append(still, fmt.Sprintf("%s\nstderr (last 4 KiB):\n%s", strings.Join(a.cmd.Args[1:], " "), tail(a.stderr.Bytes(), 4<<10)))
		}
	}
	t.Fatalf("still running after 3 minutes:\n%s", strings.Join(still, "\n\n"))
	return cr
}

// TestChaos_ClusterKillsAgentsAndCountsAllOldAllNew: kvrflow chaos
// --cluster 3 against an etcd runs its iterations and reports them:
// all-old + all-new = iterations, mixed 0, exit 0; the text summary
// names the counts.
func TestChaos_ClusterKillsAgentsAndCountsAllOldAllNew(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	args := append([]string{"chaos", "--cluster", "3", "--iterations", "2", "--seed", "5", "--json"}, ce.args...)
	r := mustRun(t, exitOK, ce.env, args...)
	var d struct {
		Seed       uint64 `json:"seed"`
		Nodes      int    `json:"nodes"`
		Iterations int    `json:"iterations"`
		AllOld     int    `json:"all_old"`
		AllNew     int    `json:"all_new"`
		Mixed      int    `json:"mixed"`
		Failures   int    `json:"invariant_failures"`
	}
	decodeLoose(t, r, &d)
	if d.Seed != 5 || d.Nodes != 3 || d.Iterations != 2 || d.AllOld+d.AllNew != 2 || d.Mixed != 0 || d.Failures != 0 {
		t.Fatalf("chaos --cluster --json: %+v\n%s", d, r)
	}
	text := mustRun(t, exitOK, ce.env, append([]string{"chaos", "--cluster", "2", "--iterations", "1"}, ce.args...)...)
	for _, w := range []string{"all-old", "all-new", "mixed", "invariant failures"} {
		if !strings.Contains(text.stdout, w) {
			t.Errorf("chaos --cluster text lacks %q:\n%s", w, text.stdout)
		}
	}
	mustRun(t, exitUsage, nil, "chaos", "--cluster", "2", "--from", "/x", "--etcd", "127.0.0.1:1")
	mustRun(t, exitUsage, nil, "chaos", "--cluster", "2")
}

// TestClusterAgent_AsAServiceHandlesRestoresUntilSIGTERM: without --once
// the agent handles one cluster restore after another, and SIGTERM stops
// it with exit 0.
func TestClusterAgent_AsAServiceHandlesRestoresUntilSIGTERM(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	nodes := newNodes(t, t.TempDir(), 2)
	var services []*child
	for _, c := range nodes {
		args := append([]string{"cluster", "agent", "--node", c.id, "--db", c.db}, ce.args...)
		services = append(services, startChild(t, ce.env, args...))
	}
	if r := ce.coordinate(t, writePlan(t, "svc-1", nodes, nil)); r.code != exitOK {
		t.Fatalf("first restore: %s", r)
	}
	allHold(t, nodes, "new")
	// A second restore, which aborts (one node's source is missing):
	// every node keeps what the first gave it.
	if r := ce.coordinate(t, writePlan(t, "svc-2", nodes, func(p *cluster.Plan) { p.Nodes[1].From += "-missing" })); r.code != exitRolledBack {
		t.Fatalf("second restore: want exit 1, got %s", r)
	}
	allHold(t, nodes, "new")
	for _, s := range services {
		must(t, s.cmd.Process.Signal(syscall.SIGTERM))
		if r := s.wait(t); r.code != exitOK {
			t.Errorf("agent after SIGTERM: want exit 0, got %s", r)
		}
	}
}

// TestClusterRestore_CrashAtEachPointThenRunAgain: the crash matrix
// through the CLI: one agent (n2) or the coordinator dies (SIGKILL, by
// KVRFLOW_FAULT=POINT:crash) at each named point of the cluster workflow
// and of the restore it runs, and is run again (an agent only if etcd has
// no outcome from it; the coordinator with the same plan, which follows
// the attempt). Afterwards every node is old or every node new, new
// exactly when etcd's decision is commit, and no journal has a run in
// flight (the nodes' cleanup). With -short a sample of the points.
func TestClusterRestore_CrashAtEachPointThenRunAgain(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	agentPoints := []string{"restore.precheck.end", "restore.write.begin", "restore.verify.end", "restore.prepared.begin",
		"cluster.agent.before-vote", "cluster.agent.after-vote", "cluster.agent.decided", "restore.commit.begin",
		"restore.commit.end", "restore.finish.begin", "restore.finish.end", "cluster.agent.before-outcome"}
	coordPoints := []string{"cluster.coordinator.published", "cluster.coordinator.decided"}
	if testing.Short() {
		agentPoints = []string{"restore.write.begin", "cluster.agent.after-vote", "restore.commit.end", "cluster.agent.before-outcome"}
		coordPoints = coordPoints[:1]
	}
	type tally struct{ old, new int }
	var got tally
	run := func(t *testing.T, who, point string) {
		nodes := newNodes(t, t.TempDir(), 3)
		name := strings.NewReplacer(".", "-").Replace(who + "-" + point)
		plan := writePlan(t, name, nodes, nil)
		crash := []string{"KVRFLOW_FAULT=" + point + ":crash"}
		coordArgs := append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "60s"}, ce.args...)
		var agents []*child
		var coord *child
		if who == "agent" {
			coord = startChild(t, ce.env, coordArgs...)
			agents = append(agents, ce.agent(t, nodes[0]), startChild(t, append(crash, ce.env...),
				append([]string{"cluster", "agent", "--once", "--json", "--node", "n2", "--db", nodes[1].db}, ce.args...)...), ce.agent(t, nodes[2]))
			r := agents[1].wait(t)
			if r.signal != syscall.SIGKILL {
				t.Fatalf("agent n2 did not die at %s: %s", point, r)
			}
			if d, _ := ce.statusOf(t, name); nodeReport(d.Nodes, "n2").Outcome != "" {
				agents[1] = nil // it recorded its outcome: done
			} else {
				agents[1] = ce.agent(t, nodes[1])
			}
		} else {
			agents = ce.agents(t, nodes)
			r := startChild(t, append(crash, ce.env...), coordArgs...).wait(t)
			if r.signal != syscall.SIGKILL {
				t.Fatalf("the coordinator did not die at %s: %s", point, r)
			}
			coord = startChild(t, ce.env, coordArgs...)
		}
		for i, a := range agents {
			if a == nil {
				continue
			}
			if r := a.wait(t); r.code != exitOK && r.code != exitRolledBack {
				t.Fatalf("agent %s after the crash at %s: %s", nodes[i].id, point, r)
			}
		}
		cr := coord.wait(t)
		s, _ := ce.statusOf(t, name)
		want := map[string]string{"commit": "new", "abort": "old"}[s.Decision]
		if want == "" {
			t.Fatalf("%s crash at %s: no decision; coordinator: %s", who, point, cr)
		}
		if wantCode := map[string]int{"new": exitOK, "old": exitRolledBack}[want]; cr.code != wantCode {
			t.Errorf("coordinator: want exit %d (decision %s), got %s", wantCode, s.Decision, cr)
		}
		allHold(t, nodes, want)
		if want == "new" {
			got.new++
		} else {
			got.old++
		}
		t.Logf("%s killed at %s: decision %s, every node %s", who, point, s.Decision, want)
	}
	for _, p := range agentPoints {
		t.Run("agent "+p, func(t *testing.T) { run(t, "agent", p) })
	}
	for _, p := range coordPoints {
		t.Run("coordinator "+p, func(t *testing.T) { run(t, "coordinator", p) })
	}
	t.Logf("%d crash points: all-old %d, all-new %d, mixed 0", len(agentPoints)+len(coordPoints), got.old, got.new)
}
