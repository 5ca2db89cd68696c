package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/internal/etcdproc"
)

// TestRecover_DecisionIsCheckedAgainstEtcd: n1's agent dies after voting
// prepared; n2 never runs, so the prepare timeout decides abort. The
// operator's `recover --decision commit --etcd` on n1 is refused (exit 2,
// DIR old): it would leave n1 new and n2 old. --decision abort is applied.
// Without --etcd the override warns, naming the cluster restore.
func TestRecover_DecisionIsCheckedAgainstEtcd(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	nodes := newNodes(t, t.TempDir(), 2)
	plan := writePlan(t, "rd", nodes, nil)
	startChild(t, ce.env, append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "2s"}, ce.args...)...)
	r := ce.agent(t, nodes[0], "--fault", "cluster.agent.after-vote:crash").wait(t)
	if r.signal == 0 {
		t.Fatalf("n1's agent did not crash after its vote: %s", r)
	}
	recoverArgs := func(decision string) []string {
		return append([]string{"recover", "--db", nodes[0].db, "--decision", decision}, ce.args...)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		d, _ := ce.statusOf(t, "rd")
		if d.Decision == "abort" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no abort decision after the prepare timeout: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = mustRun(t, exitUsage, ce.env, recoverArgs("commit")...)
	if line := oneErrorLine(t, r); !strings.Contains(line, "decided abort") {
		t.Errorf("recover --decision commit against etcd's abort: %s", line)
	}
	if got := nodes[0].which(t); got != "old" {
		t.Fatalf("after a refused --decision commit n1 holds %s", got)
	}
	mustRun(t, exitOK, ce.env, recoverArgs("abort")...)
	allHold(t, nodes, "old")
}
