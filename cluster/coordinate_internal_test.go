package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/internal/etcdtest"
	"github.com/kvrflow/kvrflow/steps"
)

// TestCoordinate_ContradictingOutcomeIsReportedAtOnce: the restore is
// decided commit, node a reports rolled_back (an operator's override that
// disagreed) and node b never reports. The coordinator says mixed
// (steps.ErrInconsistent, exit 4) as soon as a's outcome arrives, not
// undecided once its wait is over: the cluster is split whatever b says.
func TestCoordinate_ContradictingOutcomeIsReportedAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const prefix = "/co/"
	k := keysOf(prefix, "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Its wait (an hour) outlasts the test's: only a prompt answer
		// passes.
		rep, err := Coordinate(ctx, cli, prefix, plan, CoordinateOptions{PrepareTimeout: time.Hour, Wait: time.Hour})
		done <- result{rep, err}
	}()
	for {
		if a, _, err := current(ctx, cli, k); err == nil && a == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	tl, err := vote(ctx, cli, k, 1, 0, "b", votePrepared, "vb")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := settle(ctx, cli, k, 1, plan, tl); err != nil || d != decisionCommit {
		t.Fatalf("decision %q, %v", d, err)
	}
	if _, err := cli.Put(ctx, k.outcome(1, "a"), outcomeRolledBack); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, steps.ErrInconsistent) || r.rep == nil || r.rep.Outcome != Mixed {
			t.Errorf("coordinator: %+v, %v; want mixed, steps.ErrInconsistent", r.rep, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the coordinator did not report the contradicting outcome")
	}
}

// TestAttemptNumber: agents and publish read attempts/NAME alike, as
// publish writes it; anything else (a hand edit) is no attempt.
func TestAttemptNumber(t *testing.T) {
	for v, want := range map[string]int64{
		"1": 1, "42": 42, "9223372036854775806": 9223372036854775806,
		"0": 0, "-1": 0, " 1": 0, "1 ": 0, "+1": 0, "x": 0, "1x": 0, "9223372036854775807": 0, "99999999999999999999": 0,
	} {
		a, ok := attemptNumber([]byte(v))
		if ok != (want > 0) || a != want {
			t.Errorf("attemptNumber(%q) = %d, %v; want %d, %v", v, a, ok, want, want > 0)
		}
	}
}
