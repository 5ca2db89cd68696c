package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestSkipRecorded_SkipsExactlyWhatHandleWouldOverBatches: 260 restores
// in etcd (more than outcomeBatch, and more than planBatch of them
// without n1's outcome), of every kind an agent's full read meets. Its
// skip must hold exactly those handle finds nothing to do in (n1's
// outcome recorded; a plan that does not name n1) and leave to handle
// every other: a plan naming n1 without its outcome, an outcome key with
// an empty value, n1's outcome in an earlier attempt only, a plan that
// does not parse, one naming another restore, one rewritten after
// publishing, an attempt this process recovered a run of (resolved or
// twin), and one attempts/NAME holds garbage for (not a restore). Each
// batch's answers must go to its own restores: a shift at a batch's
// edge would skip a restore n1 has to act in.
func TestSkipRecorded_SkipsExactlyWhatHandleWouldOverBatches(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const prefix = "/sk/"
	var ops []clientv3.Op
	flush := func() {
		for len(ops) > 0 {
			n := min(len(ops), 100)
			if _, err := cli.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = ops[n:]
		}
	}
	record := func(name string, nodes ...string) string {
		p := Plan{Name: name}
		for _, n := range nodes {
			p.Nodes = append(p.Nodes, PlanNode{ID: n, From: "/x/" + n})
		}
		b, err := json.Marshal(attemptRecord{ID: "id-" + name, Plan: p, PrepareTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a := &agent{cli: cli, prefix: prefix, o: AgentOptions{Node: "n1"}, resolved: map[string]bool{}, twin: map[string]bool{}, skip: map[string]int64{}}
	want := map[string]bool{} // NAME/ATTEMPT skipped
	for i := range 260 {
		name := fmt.Sprintf("r%03d", i)
		k := keysOf(prefix, name)
		att := int64(1)
		if i%7 == 3 {
			att = 2 // n1's outcome in attempt 1 is not one in attempt 2
			ops = append(ops, clientv3.OpPut(k.plan(1), record(name, "n1", "n2")), clientv3.OpPut(k.outcome(1, "n1"), outcomeRolledBack))
		}
		ops = append(ops, clientv3.OpPut(k.attempt(), strconv.FormatInt(att, 10)))
		seen := fmt.Sprintf("%s/%d", name, att)
		switch {
		case i == 5 || i == 180:
			ops = append(ops, clientv3.OpPut(k.plan(att), "{not json"))
		case i == 6 || i == 181:
			ops = append(ops, clientv3.OpPut(k.plan(att), record("other", "n2")))
		case i == 7:
			ops[len(ops)-1] = clientv3.OpPut(k.attempt(), "garbage")
		case i == 8 || i == 199:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n1")), clientv3.OpPut(k.outcome(att, "n1"), ""))
		case i == 9 || i == 150:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n1")), clientv3.OpPut(k.outcome(att, "n1"), outcomeCommitted))
			a.resolved[Tag(name, att, "id-"+name)] = true
		case i == 10 || i == 151:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n1")), clientv3.OpPut(k.outcome(att, "n1"), outcomeCommitted))
			a.twin[Tag(name, att, "id-"+name)] = true
		case i == 11 || i == 230:
			flush() // the plan rewritten: its Version 2
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n2")))
			flush()
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n2")))
		case i%3 == 0:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n1", "n2")), clientv3.OpPut(k.outcome(att, "n1"), outcomeCommitted))
			want[seen] = true
		case i%3 == 1:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n2", "n3")))
			want[seen] = true
		default:
			ops = append(ops, clientv3.OpPut(k.plan(att), record(name, "n2", "n1"))) // n1's part to take
		}
	}
	flush()
	resp, err := cli.Get(ctx, attemptsDir(prefix), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.skipRecorded(ctx, attemptsDir(prefix), resp.Kvs); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), attemptsDir(prefix))
		seen := name + "/" + string(kv.Value)
		if rev, ok := a.skip[seen]; ok != want[seen] || ok && rev != kv.ModRevision {
			wrong = append(wrong, fmt.Sprintf("%s skipped %v (rev %d of %d), want %v", seen, ok, rev, kv.ModRevision, want[seen]))
		}
	}
	if len(a.skip) != len(want) {
		wrong = append(wrong, fmt.Sprintf("%d skipped, want %d", len(a.skip), len(want)))
	}
	sort.Strings(wrong)
	if len(wrong) > 0 {
		t.Errorf("skipRecorded over %d restores:\n%s", len(resp.Kvs), strings.Join(wrong, "\n"))
	}
	t.Logf("%d restores, %d skipped", len(resp.Kvs), len(a.skip))
}
