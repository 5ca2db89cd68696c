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
