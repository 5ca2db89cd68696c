package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// agentPoints are the crash points of one node's agent: every state of
// the restore workflow (prepared included), the protocol's own points,
// and each journal commit.
func agentPoints() []string {
	var out []string
	for _, s := range []string{"precheck", "clean", "write", "verify", "prepared", "commit", "finish", "rollback"} {
		out = append(out, "restore."+s+".begin:crash", "restore."+s+".end:crash")
	}
	out = append(out, "cluster.agent.before-vote:crash", "cluster.agent.after-vote:crash",
		"cluster.agent.decided:crash", "cluster.agent.before-outcome:crash")
	for n := 1; n <= 14; n++ {
		out = append(out, fmt.Sprintf("journal.after-commit:crash@%d", n))
	}
	return out
}

var coordinatorPoints = []string{"cluster.coordinator.published:crash", "cluster.coordinator.decided:crash"}

// doubleCrashes are a first crash and a second one during the recovery
// of the first.
var doubleCrashes = [][2]string{
	{"restore.prepared.begin:crash", "restore.commit.begin:crash"},
	{"cluster.agent.after-vote:crash", "cluster.agent.decided:crash"},
	{"restore.commit.end:crash", "restore.finish.begin:crash"},
	{"restore.write.begin:crash", "restore.rollback.begin:crash"},
	{"cluster.agent.before-vote:crash", "journal.after-commit:crash@1"},
	{"restore.rollback.begin:crash", "restore.rollback.end:crash"},
	{"cluster.agent.decided:crash", "cluster.agent.before-outcome:crash"},
}

// commitCase and abortCase are the two shapes of a crash case: every
// node can commit; or node n3 votes abort once the crashed node n2 has
// voted (so n2's rollback runs from prepared).
func commitCase() scenario { sc := plain(3); sc.crashNode = 1; return sc }
func abortCase() scenario {
	sc := plain(3)
	sc.crashNode, sc.abortNode, sc.abortLate = 1, 2, true
	return sc
}

// TestCluster_CrashMatrix crashes one node's agent (as kill -9 would:
// no more of its code runs; its locks are released) at every fault point
// of the restore workflow and of the protocol, and the coordinator at
// each of its points, then starts a new instance; and crashes some nodes
// twice (again during their recovery). After each case every node holds
// its old database or every node its new one, new exactly when etcd's
// decision is commit, no run left prepared. -short runs a sample; the
// full run adds every point in both shapes, the double crashes, and 50
// random crash points.
func TestCluster_CrashMatrix(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	c := &tally{}
	var cases []scenario
	add := func(sc scenario, spec, spec2, coord string) {
		sc.spec, sc.spec2, sc.coordSpec = spec, spec2, coord
		cases = append(cases, sc)
	}
	if testing.Short() {
		for _, p := range []string{"restore.write.begin:crash", "cluster.agent.after-vote:crash", "restore.prepared.begin:crash", "restore.finish.begin:crash"} {
			add(commitCase(), p, "", "")
		}
		add(abortCase(), "restore.rollback.begin:crash", "", "")
		add(commitCase(), "", "", "cluster.coordinator.published:crash")
		add(commitCase(), doubleCrashes[0][0], doubleCrashes[0][1], "")
	} else {
		for _, p := range agentPoints() {
			add(commitCase(), p, "", "")
			add(abortCase(), p, "", "")
		}
		for _, p := range coordinatorPoints {
			add(commitCase(), "", "", p)
			add(abortCase(), "", "", p)
		}
		for _, d := range doubleCrashes {
			add(commitCase(), d[0], d[1], "")
			add(abortCase(), d[0], d[1], "")
		}
		rng := rand.New(rand.NewPCG(14, 14))
		points := agentPoints()
		for range 50 {
			sc := commitCase()
			if rng.IntN(2) == 0 {
				sc = abortCase()
			}
			spec2 := ""
			if rng.IntN(3) == 0 {
				spec2 = points[rng.IntN(len(points))]
			}
			coord := ""
			if rng.IntN(4) == 0 {
				coord = coordinatorPoints[rng.IntN(len(coordinatorPoints))]
			}
			add(sc, points[rng.IntN(len(points))], spec2, coord)
		}
	}
	decisions := map[string]int{}
	for _, sc := range cases {
		d := sc.run(t, cli, c)
		w, _, _ := strings.Cut(d, ":")
		decisions[w]++
		if t.Failed() {
			break
		}
	}
	t.Logf("crash matrix: %v; decisions %v", c, decisions)
	if c.mix != 0 {
		t.Errorf("%d mixed cases", c.mix)
	}
}
