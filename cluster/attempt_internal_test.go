package cluster

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestPublish_NeverWritesAnAttemptNumberItRefuses: attempts/r holds
// MaxInt64-1 (a hand edit, but one attemptNumber accepts: it has a
// next). Publishing a new attempt must not write MaxInt64, a value
// attemptNumber refuses: agents would ignore the attempt it publishes
// and every later publish and status would call it a hand edit. It is
// refused (ErrUntrusted), nothing written.
func TestPublish_NeverWritesAnAttemptNumberItRefuses(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/mx/", "r")
	last := strconv.FormatInt(math.MaxInt64-1, 10)
	if _, err := cli.Put(ctx, k.attempt(), last); err != nil {
		t.Fatal(err)
	}
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}}}
	a, _, err := publish(ctx, cli, k, plan, time.Minute, false)
	t.Logf("publish: attempt %d, %v", a, err)
	resp, gerr := cli.Get(ctx, k.attempt())
	if gerr != nil {
		t.Fatal(gerr)
	}
	if v := resp.Kvs[0].Value; string(v) != last {
		if _, ok := attemptNumber(v); !ok {
			t.Errorf("publish wrote %s = %q, which attemptNumber (agents, publish, status) refuses", k.attempt(), v)
		}
	}
	if err == nil || !errors.Is(err, ErrUntrusted) {
		t.Errorf("publish after attempt MaxInt64-1: %d, %v; want ErrUntrusted (no attempt number left)", a, err)
	}
	if n, err := cli.Get(ctx, k.base, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || n.Count != 0 {
		t.Errorf("keys under %s: %v, %v; want none written", k.base, n, err)
	}
}

// TestAttemptNumber_OnlyWhatPublishWrites: attemptNumber takes exactly
// strconv.FormatInt's text. A value with leading zeros ("01") names
// attempt 1 to a lax parse, but every Txn fences on the text "1": an
// agent that took it would restore its database for an attempt whose
// vote can only be refused.
func TestAttemptNumber_OnlyWhatPublishWrites(t *testing.T) {
	for _, v := range []string{"01", "007", "0", "-0", "00"} {
		if a, ok := attemptNumber([]byte(v)); ok {
			t.Errorf("attemptNumber(%q) = %d, true; want refused: publish writes %q", v, a, strconv.FormatInt(a, 10))
		}
	}
	for a := int64(1); a < 1000; a++ {
		if got, ok := attemptNumber([]byte(strconv.FormatInt(a, 10))); !ok || got != a {
			t.Errorf("attemptNumber(%d) = %d, %v", a, got, ok)
		}
	}
	if _, ok := attemptNumber(nil); ok {
		t.Error("attemptNumber(empty) accepted")
	}
}

// TestReadReport_KeysBesideTheAttemptsDoNotCount: readReport reads the
// attempt with one Get of restores/r/1/. Keys put by hand beside
// kvrflow's (votesX, plan2, decisionX, an outcome of a node not in the
// plan, a voter with no vote) and attempt 10's keys (restores/r/10/...,
// which "restores/r/1" without its slash would take in) must change
// nothing in attempt 1's report; a plan key absent is ErrBadPlan.
func TestReadReport_KeysBesideTheAttemptsDoNotCount(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/rr/", "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}
	if a, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil || a != 1 {
		t.Fatalf("publish: %d, %v", a, err)
	}
	if _, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, voter("h")); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]string{
		k.att(1) + "votesX":     "abort: forged",
		k.att(1) + "votes":      "abort: forged",
		k.att(1) + "plan2":      "garbage",
		k.att(1) + "plan/x":     "garbage",
		k.att(1) + "decisionX":  "commit",
		k.att(1) + "decision/x": "commit",
		k.voter(1, "b"):         "run forged",
		k.outcome(1, "c"):       outcomeCommitted,
		k.votes(1) + "b/x":      "abort: forged",
		k.att(10) + "plan":      "garbage",
		k.decision(10):          "commit",
		k.vote(10, "b"):         "abort: ten",
		k.outcome(10, "a"):      outcomeCommitted,
		k.base + "1":            "x",
		k.base + "1decision":    "commit",
	} {
		if _, err := cli.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	rep, rec, err := readReport(ctx, cli, k, "r", 1)
	if err != nil {
		t.Fatalf("readReport: %v", err)
	}
	if rec.rev == 0 || rec.Plan.Name != "r" || len(rec.Plan.Nodes) != 2 {
		t.Errorf("record %+v", rec)
	}
	if rep.Decision != "" || rep.Outcome != Undecided || len(rep.Nodes) != 2 ||
		rep.Nodes[0] != (NodeReport{ID: "a", Vote: votePrepared}) || rep.Nodes[1] != (NodeReport{ID: "b"}) {
		t.Errorf("report %+v; want undecided, a prepared, b no vote, no outcome", rep)
	}
	if _, err := cli.Delete(ctx, k.plan(1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readReport(ctx, cli, k, "r", 1); !errors.Is(err, ErrBadPlan) {
		t.Errorf("readReport without the plan key: %v; want ErrBadPlan", err)
	}
}
