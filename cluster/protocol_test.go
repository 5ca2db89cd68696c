package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// TestProtocol_FencingAndExactlyOnceDecision drives the Txns by hand: a
// vote names its attempt and is refused once that attempt is not the
// current one; commit is refused while one vote is not "prepared" or the
// attempt is not current; the first decision holds, a second is refused.
func TestProtocol_FencingAndExactlyOnceDecision(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/p/", "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}

	a1, _, err := publish(ctx, cli, k, plan, time.Minute, true)
	if err != nil || a1 != 1 {
		t.Fatalf("publish: %d, %v", a1, err)
	}
	if a, followed, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil || a != 1 || !followed {
		t.Fatalf("publish of the same plan again: %d %v %v; want to follow attempt 1", a, followed, err)
	}
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "v"))
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "v")) // a restarted agent votes again: the same vote
	if err := castVote(ctx, cli, k, 1, "a", votePrepared, "w"); !errors.Is(err, errNotMine) {
		t.Fatalf("the same vote by another voter: %v, want errNotMine", err)
	}
	if err := castVote(ctx, cli, k, 1, "a", abortValue("changed my mind"), "v"); !errors.Is(err, ErrStale) {
		t.Fatalf("a second, different vote: %v, want ErrStale", err)
	}
	if d, err := tryDecide(ctx, cli, k, 1, plan); err != nil || d != "" {
		t.Fatalf("one vote of two: decision %q, %v", d, err)
	}

	// Attempt 2 is made current by hand, with attempt 1 undecided (the
	// race publish itself avoids): b's late vote in attempt 1 is refused,
	// and attempt 1 cannot commit.
	if _, err := cli.Put(ctx, k.attempt(), "2"); err != nil {
		t.Fatal(err)
	}
	if err := castVote(ctx, cli, k, 1, "b", votePrepared, "v"); !errors.Is(err, ErrStale) {
		t.Fatalf("vote in a stale attempt: %v, want ErrStale", err)
	}
	if _, err := cli.Put(ctx, k.vote(1, "b"), votePrepared); err != nil { // forced in, behind the fence
		t.Fatal(err)
	}
	d, err := tryDecide(ctx, cli, k, 1, plan)
	if err != nil || !strings.HasPrefix(d, decisionAbort) {
		t.Fatalf("every vote prepared in a stale attempt: decision %q, %v; want abort", d, err)
	}
	if d2, err := writeAbort(ctx, cli, k, 1, "again"); err != nil || d2 != d {
		t.Fatalf("a second decision: %q, %v; want the first, %q", d2, err, d)
	}

	// A new attempt through publish: the previous one is decided first.
	if _, err := cli.Put(ctx, k.attempt(), "1"); err != nil {
		t.Fatal(err)
	}
	other := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/z"}}}
	a3, followed, err := publish(ctx, cli, k, other, time.Minute, true)
	if err != nil || a3 != 2 || followed {
		t.Fatalf("publish of another plan: %d %v %v", a3, followed, err)
	}
	must(t, castVote(ctx, cli, k, 2, "a", votePrepared, "v"))
	if d, err := tryDecide(ctx, cli, k, 2, other); err != nil || d != decisionCommit {
		t.Fatalf("every vote prepared: %q, %v; want commit", d, err)
	}
	if d, err := writeAbort(ctx, cli, k, 2, "late"); err != nil || d != decisionCommit {
		t.Fatalf("abort after commit: %q, %v; want commit kept", d, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReport_OutcomeContradictingTheDecisionIsMixed: every node reported,
// but one's outcome is rolled_back under a commit decision (an operator's
// override that disagreed, say): the report is mixed, not committed.
func TestReport_OutcomeContradictingTheDecisionIsMixed(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/m/")
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	must(t, castVote(ctx, cli, k, 1, "b", votePrepared, "vb"))
	if d, err := tryDecide(ctx, cli, k, 1, plan); err != nil || d != decisionCommit {
		t.Fatalf("decision %q, %v", d, err)
	}
	for n, o := range map[string]string{"a": outcomeCommitted, "b": outcomeRolledBack} {
		if _, err := cli.Put(ctx, k.outcome(1, n), o); err != nil {
			t.Fatal(err)
		}
	}
	rep, _, err := readReport(ctx, cli, k, "r", 0)
	if err != nil || rep.Outcome != Mixed {
		t.Fatalf("report: %+v, %v; want outcome mixed", rep, err)
	}
}

// TestErrUndecided_SaysNotFinished: ErrUndecided matches fsm.ErrUndecided
// (exit 5) but does not say "no decision yet": the coordinator returns it
// too when the decision is there and a node has not reported.
func TestErrUndecided_SaysNotFinished(t *testing.T) {
	err := fmt.Errorf("%w: r: attempt 1 decided abort; not every node reported its outcome", ErrUndecided)
	if !errors.Is(err, fsm.ErrUndecided) || !errors.Is(err, ErrUndecided) {
		t.Fatalf("%v does not match fsm.ErrUndecided and ErrUndecided", err)
	}
	if strings.Contains(err.Error(), "no decision yet") {
		t.Errorf("message contradicts itself: %q", err)
	}
}

// castVote is vote without the tally.
func castVote(ctx context.Context, cli *clientv3.Client, k keys, a int64, node, value, voter string) error {
	_, err := vote(ctx, cli, k, a, 0, node, value, voter)
	return err
}

// TestVote_TheLastVotersTallyShowsEveryVote: a vote's Txn returns the
// attempt's tally as it stood right after the vote, so the last voter
// decides without another read; a vote cast again returns none.
func TestVote_TheLastVotersTallyShowsEveryVote(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/t/")
	ta, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, "va")
	if err != nil || ta == nil || len(ta.votes) != 1 || ta.decision != "" {
		t.Fatalf("the first vote's tally: %+v, %v; want a's vote alone", ta, err)
	}
	if d, err := settle(ctx, cli, k, 1, plan, ta); err != nil || d != "" {
		t.Fatalf("one vote of two settles %q, %v; want nothing", d, err)
	}
	if again, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, "va"); err != nil || again != nil {
		t.Fatalf("the same vote again: %+v, %v; want success without a tally", again, err)
	}
	tb, err := vote(ctx, cli, k, 1, 0, "b", votePrepared, "vb")
	if err != nil || tb == nil || tb.votes["a"] != votePrepared || tb.votes["b"] != votePrepared {
		t.Fatalf("the last vote's tally: %+v, %v; want both votes", tb, err)
	}
	if d, err := settle(ctx, cli, k, 1, plan, tb); err != nil || d != decisionCommit {
		t.Fatalf("the last voter settles %q, %v; want commit", d, err)
	}
	// A stale tally (a's, before b voted) settles to the decision that
	// holds once it knows there is one; a late commit Txn from a full
	// tally finds the decision and returns it.
	if d, err := settle(ctx, cli, k, 1, plan, tb); err != nil || d != decisionCommit {
		t.Fatalf("a second commit from the same tally: %q, %v; want the decision, commit", d, err)
	}
}

// TestTally_ApplyCountsVotesAndRereadsTheDecision: a watch's vote events
// are counted in the tally (other keys, other attempts change nothing; a
// vote deleted by hand is forgotten); a decision's event asks for a read
// only when it is a commit and the tally lacks a vote of the plan (the
// commit is checked against every vote): an abort, or a commit with
// every vote seen, is settled from the tally, and a forged commit over an
// abort vote is still refused there.
func TestTally_ApplyCountsVotesAndRereadsTheDecision(t *testing.T) {
	k := keysOf("/t/", "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}
	ev := func(typ mvccpb.Event_EventType, key, value string) *clientv3.Event {
		return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value)}}
	}
	put := func(key, value string) *clientv3.Event { return ev(clientv3.EventTypePut, key, value) }
	tl := &tally{votes: map[string]string{}}
	if !tl.apply(k, 1, plan, []*clientv3.Event{put(k.vote(1, "a"), votePrepared), put(k.voter(1, "a"), "va"), put(k.outcome(1, "a"), outcomeCommitted), put(k.vote(2, "b"), votePrepared)}) {
		t.Fatal("votes, voters and outcomes asked for a read")
	}
	if len(tl.votes) != 1 || tl.votes["a"] != votePrepared {
		t.Fatalf("votes %v; want a's alone (b's is another attempt's)", tl.votes)
	}
	if tl.apply(k, 1, plan, []*clientv3.Event{put(k.decision(1), decisionCommit)}) {
		t.Fatal("a commit with b's vote not seen did not ask for a read")
	}
	aborted := &tally{votes: map[string]string{"a": votePrepared}}
	if !aborted.apply(k, 1, plan, []*clientv3.Event{put(k.decision(1), abortValue("timeout"))}) || !strings.HasPrefix(aborted.decision, decisionAbort) {
		t.Fatalf("an abort asked for a read (or was not taken): %+v", aborted)
	}
	all := &tally{votes: map[string]string{"a": votePrepared}}
	if !all.apply(k, 1, plan, []*clientv3.Event{put(k.vote(1, "b"), votePrepared), put(k.decision(1), decisionCommit)}) {
		t.Fatal("a commit with every vote seen asked for a read")
	}
	if d, err := settle(context.Background(), nil, k, 1, plan, all); err != nil || d != decisionCommit {
		t.Fatalf("settled %q, %v; want commit without a request", d, err)
	}
	forged := &tally{votes: map[string]string{"a": votePrepared}}
	if !forged.apply(k, 1, plan, []*clientv3.Event{put(k.vote(1, "b"), abortValue("no")), put(k.decision(1), decisionCommit)}) {
		t.Fatal("a commit over every vote seen asked for a read")
	}
	if _, err := settle(context.Background(), nil, k, 1, plan, forged); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("a commit over b's abort vote: %v; want ErrUntrusted", err)
	}
	deleted := &tally{votes: map[string]string{"a": votePrepared, "b": votePrepared}}
	if deleted.apply(k, 1, plan, []*clientv3.Event{ev(clientv3.EventTypeDelete, k.vote(1, "b"), ""), put(k.decision(1), decisionCommit)}) {
		t.Fatal("a commit after b's vote was deleted did not ask for a read")
	}
}

// TestWait_DeadlineWithTheWatchOpenDecidesAbort: past the deadline, a
// wait whose watch is open and quiet reads again and writes abort (the
// watch is not ended by the deadline: the coordinator keeps it for the
// outcomes).
func TestWait_DeadlineWithTheWatchOpenDecidesAbort(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/t/")
	wt := openWait(t, ctx, &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(300 * time.Millisecond), retry: true, watched: k.att(1)})
	tl, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, "va")
	if err != nil {
		t.Fatal(err)
	}
	d, err := wt.decision(ctx, tl)
	if err != nil || !strings.HasPrefix(d, decisionAbort) {
		t.Fatalf("decision %q, %v; want abort at the deadline", d, err)
	}
	if wt.w == nil {
		t.Error("the watch was closed by the deadline")
	}
}

// TestWait_CoordinatorCommitsWhenTheLastVoterDoesNot: every node voted
// prepared but none wrote the commit (the last voter died between its
// vote and its commit Txn): the coordinator's wait writes it once its
// grace is over, not before.
func TestWait_CoordinatorCommitsWhenTheLastVoterDoesNot(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/g/")
	wt := openWait(t, ctx, &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(time.Minute), retry: true, watched: k.att(1), grace: lastVoterGrace})
	type result struct {
		d   string
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		d, err := wt.decision(ctx, nil)
		done <- result{d, err, time.Now()}
	}()
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	must(t, castVote(ctx, cli, k, 1, "b", votePrepared, "vb"))
	voted := time.Now()
	r := <-done
	if r.err != nil || r.d != decisionCommit {
		t.Fatalf("decision %q, %v; want commit", r.d, r.err)
	}
	if waited := r.at.Sub(voted); waited < lastVoterGrace-50*time.Millisecond {
		t.Errorf("the coordinator wrote the commit %v after the last vote; want it to leave the last voter %v", waited, lastVoterGrace)
	}
	if d, err := decision(ctx, cli, k, 1); err != nil || d != decisionCommit {
		t.Errorf("etcd's decision: %q, %v; want commit", d, err)
	}
}

// TestWarm_TakesTheFirstUseCostOffTheFirstRequest runs in fresh
// processes (the test binary again), where no message type is set up
// yet: without warm, the first encoding and decoding of a vote's Txn
// allocates far more than the second (protobuf's per-type setup); after
// warm, no more than the second.
func TestWarm_TakesTheFirstUseCostOffTheFirstRequest(t *testing.T) {
	if mode := os.Getenv("KVRFLOW_WARM_PROBE"); mode != "" {
		if mode == "warm" {
			warm()
		}
		first, second := voteRoundTrip(), voteRoundTrip()
		fmt.Printf("allocs %d %d\n", first, second)
		return
	}
	probe := func(mode string) (first, second uint64) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWarm_TakesTheFirstUseCostOffTheFirstRequest$", "-test.count=1")
		cmd.Env = append(os.Environ(), "KVRFLOW_WARM_PROBE="+mode)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", mode, err, out)
		}
		if _, err := fmt.Sscanf(string(out[bytes.Index(out, []byte("allocs ")):]), "allocs %d %d", &first, &second); err != nil {
			t.Fatalf("%s: %q: %v", mode, out, err)
		}
		return first, second
	}
	cf, cs := probe("cold")
	if cf < 2*cs {
		t.Fatalf("without warm: the first round trip allocated %d, the second %d: the probe does not see the first use's setup", cf, cs)
	}
	wf, ws := probe("warm")
	t.Logf("allocations of the first and second round trip: %d and %d without warm, %d and %d after it", cf, cs, wf, ws)
	if wf > ws+ws/4 {
		t.Errorf("after warm: the first round trip allocated %d, the second %d; want no more than the second (without warm: %d)", wf, ws, cf)
	}
}

// voteRoundTrip encodes a vote's Txn request and decodes an answer of
// its shape, as the gRPC codec does, and returns how many allocations
// that took.
func voteRoundTrip() uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	k := keysOf("/w/", "r")
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{{Result: pb.Compare_EQUAL, Target: pb.Compare_VALUE, Key: []byte(k.attempt()), TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k.vote(1, "a")), Value: []byte(votePrepared)}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k.votes(1))}}}},
	}
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 7}, Succeeded: true, Responses: []*pb.ResponseOp{
		{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{}}}},
		{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: []byte(k.vote(1, "a")), Value: []byte(votePrepared)}}, Count: 1}}},
	}}
	b, _ := proto.Marshal(req)
	_ = proto.Unmarshal(b, &pb.TxnRequest{})
	b, _ = proto.Marshal(resp)
	_ = proto.Unmarshal(b, &pb.TxnResponse{})
	runtime.ReadMemStats(&m1)
	return m1.Mallocs - m0.Mallocs
}

// TestWait_CommitTooLargeForEtcdDecidesAbort: a plan of 127 nodes makes a
// commit Txn of 129 compares, which etcd (--max-txn-ops 128, its default)
// refuses whatever the votes. Every node voted prepared: the wait must not
// retry that refusal for ever (every agent hung, every run prepared, past
// the prepare timeout too) but decide abort, saying why.
func TestWait_CommitTooLargeForEtcdDecidesAbort(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/big/", "r")
	plan := &Plan{Name: "r"}
	for i := range 127 {
		plan.Nodes = append(plan.Nodes, PlanNode{ID: fmt.Sprintf("n%d", i), From: fmt.Sprintf("/x/%d", i)})
	}
	if _, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	var last *tally
	for _, n := range plan.Nodes {
		tl, err := vote(ctx, cli, k, 1, 0, n.ID, votePrepared, "v"+n.ID)
		if err != nil {
			t.Fatal(err)
		}
		last = tl
	}
	// The last voter's wait (an agent's: no grace), its deadline past
	// soon; bounded by wctx so that a wait that never ends fails the test.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	wt := &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(time.Second), retry: true, watched: k.decision(1)}
	defer wt.close()
	if _, err := wt.open(wctx); err != nil {
		t.Fatal(err)
	}
	d, err := wt.decision(wctx, last)
	if err != nil || !strings.HasPrefix(d, decisionAbort) || !strings.Contains(d, "max-txn-ops") {
		t.Fatalf("decision %q, %v; want abort naming --max-txn-ops", d, err)
	}
	if got, err := decision(ctx, cli, k, 1); err != nil || got != d {
		t.Errorf("etcd's decision %q, %v; want %q", got, err, d)
	}
}

// TestAbort_FindingAForgedCommitRefusesIt: a participant about to write
// abort (a node voted abort, or the prepare timeout passed) finds a
// decision already there: a commit put by hand, not by the commit Txn (b
// never voted prepared). The abort's answer is a decision read like any
// other: it is checked against the votes and refused (ErrUntrusted),
// never returned as the decision to apply. Both a tally a moment old
// (the coordinator's, counted from its watch) and a wait past its
// deadline holding its vote's tally reach that abort.
func TestAbort_FindingAForgedCommitRefusesIt(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}

	// settle, from a tally that saw b's abort vote but not the decision.
	k := keysOf("/fa/", "r")
	if _, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	stale, err := vote(ctx, cli, k, 1, 0, "b", abortValue("no"), "vb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, k.decision(1), decisionCommit); err != nil {
		t.Fatal(err)
	}
	if d, err := settle(ctx, cli, k, 1, plan, stale); !errors.Is(err, ErrUntrusted) {
		t.Errorf("settle of an abort vote over a forged commit: %q, %v; want ErrUntrusted", d, err)
	}

	// A wait past its deadline with a's vote's tally (b has not voted).
	k = keysOf("/fd/", "r")
	if _, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	wt := openWait(t, ctx, &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(-time.Second), retry: true, watched: k.decision(1)})
	mine, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, "va")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, k.decision(1), decisionCommit); err != nil {
		t.Fatal(err)
	}
	if d, err := wt.decision(ctx, mine); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a wait past its deadline over a forged commit: %q, %v; want ErrUntrusted", d, err)
	}
}

// TestWait_PastTheDeadlineEveryVotePreparedCommits: the last voter died
// between its vote and its commit Txn and no coordinator runs (killed in
// its grace, say). A waiting agent's tally (its own vote's) shows one
// vote of two; at its deadline it reads again and, every vote being
// prepared, writes commit: the timeout aborts only what cannot commit.
func TestWait_PastTheDeadlineEveryVotePreparedCommits(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/dl/")
	wt := openWait(t, ctx, &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(300 * time.Millisecond), retry: true, watched: k.decision(1)})
	mine, err := vote(ctx, cli, k, 1, 0, "a", votePrepared, "va")
	if err != nil {
		t.Fatal(err)
	}
	must(t, castVote(ctx, cli, k, 1, "b", votePrepared, "vb")) // and dies
	if d, err := wt.decision(ctx, mine); err != nil || d != decisionCommit {
		t.Fatalf("decision %q, %v; want commit", d, err)
	}
}

// TestDecisionOf_ForgedCommitIsRefused: what `kvrflow recover --decision
// commit --etcd` checks the operator's decision against is a decision
// read like any other: a commit put by hand while a node voted abort is
// ErrUntrusted (exit 2, nothing done), not a commit that agrees.
func TestDecisionOf_ForgedCommitIsRefused(t *testing.T) {
	cli, ctx, k, _ := twoNodeAttempt(t, "/do/")
	rec, err := loadAttempt(ctx, cli, k, 1)
	if err != nil {
		t.Fatal(err)
	}
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	must(t, castVote(ctx, cli, k, 1, "b", abortValue("no"), "vb"))
	if _, err := cli.Put(ctx, k.decision(1), decisionCommit); err != nil {
		t.Fatal(err)
	}
	for _, abort := range []bool{false, true} {
		if d, err := DecisionOf(ctx, cli, "/do/", Tag("r", 1, rec.ID), abort); !errors.Is(err, ErrUntrusted) {
			t.Errorf("DecisionOf (abort %v) over a forged commit: %q, %v; want ErrUntrusted", abort, d, err)
		}
	}
}

// decision returns attempt a's decision ("" if none).
func decision(ctx context.Context, cli *clientv3.Client, k keys, a int64) (string, error) {
	resp, err := cli.Get(ctx, k.decision(a))
	if err != nil {
		return "", fmt.Errorf("etcd get %s: %w", k.decision(a), err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// TestWait_GraceOverlappingTheDeadlineCommits: every vote is prepared
// just before the prepare timeout and the last voter died before its
// commit: the coordinator's grace would end after the deadline. At the
// deadline it writes commit, never abort.
func TestWait_GraceOverlappingTheDeadlineCommits(t *testing.T) {
	cli, ctx, k, plan := twoNodeAttempt(t, "/go/")
	must(t, castVote(ctx, cli, k, 1, "a", votePrepared, "va"))
	must(t, castVote(ctx, cli, k, 1, "b", votePrepared, "vb"))
	wt := &wait{cli: cli, k: k, a: 1, plan: plan, deadline: time.Now().Add(lastVoterGrace / 4), retry: true, watched: k.att(1), grace: lastVoterGrace}
	defer wt.close()
	if d, err := wt.decision(ctx, nil); err != nil || d != decisionCommit {
		t.Fatalf("decision %q, %v; want commit", d, err)
	}
}

// TestVote_InAnAttemptPublishedAgainIsRefused: an agent read attempt 1
// of "r" and restored its plan; meanwhile the operator deleted the
// restore's keys and published "r" again (attempt 1 once more, another
// plan). The agent's vote, for a run of the first plan, must not count
// in the new attempt: it is refused as stale, and the new attempt is not
// decided by it.
func TestVote_InAnAttemptPublishedAgainIsRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := keysOf("/rp/", "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/old"}}}
	if _, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	read, err := loadAttempt(ctx, cli, k, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/rp/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	again := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/new"}}}
	if a, _, err := publish(ctx, cli, k, again, time.Minute, true); err != nil || a != 1 {
		t.Fatalf("publish again: %d, %v", a, err)
	}
	if tl, err := vote(ctx, cli, k, 1, read.rev, "a", votePrepared, "va"); !errors.Is(err, errRepublished) || !errors.Is(err, ErrStale) {
		t.Fatalf("a vote for the first plan in the new attempt: %+v, %v; want errRepublished (ErrStale)", tl, err)
	}
	if tl, err := readTally(ctx, cli, k, 1); err != nil || len(tl.votes) != 0 || tl.decision != "" {
		t.Fatalf("the new attempt: %+v, %v; want no vote, no decision", tl, err)
	}
	now, err := loadAttempt(ctx, cli, k, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vote(ctx, cli, k, 1, now.rev, "a", votePrepared, "va"); err != nil {
		t.Fatalf("a vote for the new plan: %v", err)
	}
}

// twoNodeAttempt publishes attempt 1 of a restore "r" of nodes a and b
// under prefix, on a fresh embedded etcd.
func twoNodeAttempt(t *testing.T, prefix string) (*clientv3.Client, context.Context, keys, *Plan) {
	t.Helper()
	cli := etcdtest.Start(t).Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	k := keysOf(prefix, "r")
	plan := &Plan{Name: "r", Nodes: []PlanNode{{ID: "a", From: "/x"}, {ID: "b", From: "/y"}}}
	if _, _, err := publish(ctx, cli, k, plan, time.Minute, true); err != nil {
		t.Fatal(err)
	}
	return cli, ctx, k, plan
}

// openWait opens wt's watch; the test's end closes it.
func openWait(t *testing.T, ctx context.Context, wt *wait) *wait {
	t.Helper()
	t.Cleanup(wt.close)
	if _, err := wt.open(ctx); err != nil {
		t.Fatal(err)
	}
	return wt
}
