package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// logLines is a zerolog writer that counts lines containing each of its
// words (and, for the others than the first, warn's level), and signals
// when want lines containing the first arrived.
type logLines struct {
	mu    sync.Mutex
	words []string
	n     map[string]int
	want  int
	done  chan struct{}
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, w := range l.words {
		if strings.Contains(string(p), w) && (i == 0 || strings.Contains(string(p), `"level":"warn"`)) {
			l.n[w]++
		}
	}
	if l.n[l.words[0]] == l.want {
		close(l.done)
	}
	return len(p), nil
}

// TestAgent_RefusedBatchIsWarnedOnce: etcd refuses the start's batched
// read (--max-txn-ops 2, three restores to look at), and each of those
// restores fails (a plan put by hand that does not parse), so the agent
// reads every restore again each second. The refusal is a fact of etcd's
// configuration, not news on every retry: it is warned once per agent
// process, not once a second beside the failures' own errors.
func TestAgent_RefusedBatchIsWarnedOnce(t *testing.T) {
	srv := etcdtest.Start(t, func(c *embed.Config) { c.MaxTxnOps = 2 })
	cli := srv.Client(t)
	nodes := newNodes(t, 1)
	const prefix = "/warn/"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 3 {
		name := fmt.Sprintf("bad%d", i)
		if _, err := cli.Put(ctx, prefix+"attempts/"+name, "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, prefix+"restores/"+name+"/1/plan", "not json"); err != nil {
			t.Fatal(err)
		}
	}
	const batched = "batched read"
	logs := &logLines{words: []string{"cluster restore", batched}, n: map[string]int{}, want: 9, done: make(chan struct{})}
	actx, acancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := cluster.Agent(actx, cli, prefix, cluster.AgentOptions{Node: nodes[0].id, DB: nodes[0].db, Log: zerolog.New(logs)})
		done <- err
	}()
	select {
	case <-logs.done:
	case err := <-done:
		t.Fatalf("agent ended: %v", err)
	case <-ctx.Done():
		t.Fatal("the agent did not fail its three restores three times")
	}
	acancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("agent: %v", err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if n := logs.n[batched]; n != 1 {
		t.Errorf("the refused batched read was warned %d times over %d failed restores; want once", n, logs.n["cluster restore"])
	}
}

// TestHostile_PreparedRunIsDecidedWhenTheAttemptKeyIsHandEdited: n1 votes
// prepared and its agent dies; attempts/g is then edited by hand to "01"
// (attempt 1 to a lax parse, no attempt to attemptNumber, so the agent's
// loop ignores it). The run must not stay prepared for ever: recovery
// decides it from the run's own tag, not from attempts/g (the commit's
// compare of attempts/g's text fails, so abort), and records n1's outcome.
func TestHostile_PreparedRunIsDecidedWhenTheAttemptKeyIsHandEdited(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	nodes := newNodes(t, 1)
	const prefix, name = "/he/", "g"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cluster.Coordinate(ctx, cli, prefix, planOf(name, nodes), cluster.CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Millisecond}); !errors.Is(err, cluster.ErrUndecided) {
		t.Fatalf("publish: %v", err)
	}
	if res := runAgent(ctx, cli, prefix, nodes[0], crashSet(t, cluster.PointAfterVote+":crash")); res.crash == "" {
		t.Fatalf("agent did not crash after its vote: %+v", res)
	}
	if _, err := cli.Put(ctx, prefix+"attempts/"+name, "01"); err != nil {
		t.Fatal(err)
	}
	outcome := prefix + "restores/" + name + "/1/outcome/" + nodes[0].id
	wch := cli.Watch(ctx, outcome)
	actx, acancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := cluster.Agent(actx, cli, prefix, cluster.AgentOptions{Node: nodes[0].id, DB: nodes[0].db, Log: zerolog.Nop()})
		done <- err
	}()
	select {
	case wr := <-wch:
		t.Logf("outcome: %v %v", wr.Events, wr.Err())
	case err := <-done:
		t.Fatalf("agent ended: %v", err)
	case <-ctx.Done():
		t.Fatalf("n1's run was not decided with attempts/%s edited by hand\n%s", name, etcdtest.Dump(cli, prefix))
	}
	acancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("agent: %v", err)
	}
	if s := nodes[0].state(t); s != "old" {
		t.Errorf("n1 is %s; want old (the commit's compare of attempts/%s fails)\n%s", s, name, etcdtest.Dump(cli, prefix))
	}
	noPrepared(t, nodes, "after the hand edit")
}
