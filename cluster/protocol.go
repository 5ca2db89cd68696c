package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The protocol's etcd operations. Each is one Get or one Txn; none
// depends on a lease or a clock for safety.

// current returns the restore's current attempt (0: none) and the
// attempt key's ModRevision (0: absent).
func current(ctx context.Context, cli *clientv3.Client, k keys) (int64, int64, error) {
	resp, err := cli.Get(ctx, k.attempt())
	if err != nil {
		return 0, 0, fmt.Errorf("etcd get %s: %w", k.attempt(), err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, nil
	}
	a, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s holds %q, not an attempt number", ErrBadPlan, k.attempt(), resp.Kvs[0].Value)
	}
	return a, resp.Kvs[0].ModRevision, nil
}

// loadAttempt returns attempt a's published record.
func loadAttempt(ctx context.Context, cli *clientv3.Client, k keys, a int64) (*attemptRecord, error) {
	resp, err := cli.Get(ctx, k.plan(a))
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", k.plan(a), err)
	}
	return attemptOfKVs(k, a, resp.Kvs)
}

// attemptOfKVs is attempt a's record from what a Get of its plan key
// returned.
func attemptOfKVs(k keys, a int64, kvs []*mvccpb.KeyValue) (*attemptRecord, error) {
	if len(kvs) == 0 {
		return nil, fmt.Errorf("%w: attempt %d has no plan at %s", ErrBadPlan, a, k.plan(a))
	}
	if v := kvs[0].Version; v != 1 {
		// publish writes a plan once; a rewritten one (a node's source
		// changed, or a node dropped after the others voted) is not the
		// plan the nodes voted on.
		return nil, fmt.Errorf("%w: %s was rewritten after it was published (version %d): not trusted", ErrUntrusted, k.plan(a), v)
	}
	return parseAttemptRecord(kvs[0].Value)
}

// publish makes plan the restore's current attempt and returns it. An
// undecided earlier attempt is first decided abort (safe: nothing is
// decided yet, so no node commits it). With follow set and a current
// attempt of the same plan, that attempt is returned instead.
//
// Txn: if attempt's ModRevision is what was read (absent: CreateRevision
// 0) and the earlier attempt has a decision, put attempt = N+1 and its
// plan. Two coordinators racing: one wins, the other reads again.
func publish(ctx context.Context, cli *clientv3.Client, k keys, plan *Plan, timeout time.Duration, follow bool) (int64, bool, error) {
	for {
		a, rev, err := current(ctx, cli, k)
		if err != nil {
			return 0, false, err
		}
		if a > 0 && follow {
			if rec, err := loadAttempt(ctx, cli, k, a); err == nil && reflect.DeepEqual(&rec.Plan, plan) {
				return a, true, nil
			}
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k.attempt()), "=", rev)}
		if a > 0 {
			if _, err := writeAbort(ctx, cli, k, a, fmt.Sprintf("superseded by attempt %d", a+1)); err != nil {
				return 0, false, err
			}
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k.decision(a)), ">", 0))
		}
		next := a + 1
		id, err := newAttemptID()
		if err != nil {
			return 0, false, err
		}
		rec, err := json.Marshal(attemptRecord{ID: id, Plan: *plan, PrepareTimeout: timeout, Published: time.Now().UTC()})
		if err != nil {
			return 0, false, err
		}
		// An attempt number is never reused: its keys (votes, decision)
		// would seem to be the new attempt's.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k.att(next)), "=", 0).WithPrefix())
		resp, err := cli.Txn(ctx).If(cmps...).Then(
			clientv3.OpPut(k.attempt(), strconv.FormatInt(next, 10)),
			clientv3.OpPut(k.plan(next), string(rec)),
		).Else(clientv3.OpGet(k.att(next), clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
		if err != nil {
			return 0, false, fmt.Errorf("etcd publish %s: %w", k.plan(next), err)
		}
		if resp.Succeeded {
			return next, false, nil
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return 0, false, fmt.Errorf("%w: %s already holds keys of attempt %d, but %s says attempt %d is the latest: etcd was edited by hand; publish under another name",
				ErrUntrusted, k.att(next), next, k.attempt(), a)
		}
	}
}

// errDecided is returned by vote when attempt a already has a decision.
var errDecided = errors.New("attempt already decided")

// errNotMine is returned by vote when the node's vote is there but was
// cast by another voter (two agents run as one node, or an agent started
// again on another database): this voter's run was never counted.
var errNotMine = fmt.Errorf("%w: vote cast by another agent", ErrStale)

// vote records node's vote in attempt a, once, with who cast it (voter:
// host, database and run).
//
// Txn: if attempt's value is a (fencing: a stale agent of an earlier
// attempt cannot vote in a later one), the vote key does not exist, and
// there is no decision yet: put the vote and the voter. A vote found
// already there with the same value and the same voter is success (a
// restarted agent voting again for the same run); another voter's is
// errNotMine.
func vote(ctx context.Context, cli *clientv3.Client, k keys, a int64, node, value, voter string) error {
	resp, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(k.attempt()), "=", strconv.FormatInt(a, 10)),
		clientv3.Compare(clientv3.CreateRevision(k.vote(a, node)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(k.decision(a)), "=", 0),
	).Then(clientv3.OpPut(k.vote(a, node), value), clientv3.OpPut(k.voter(a, node), voter)).Else(
		clientv3.OpGet(k.attempt()), clientv3.OpGet(k.vote(a, node)), clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.voter(a, node)),
	).Commit()
	if err != nil {
		return fmt.Errorf("etcd vote %s: %w", k.vote(a, node), err)
	}
	if resp.Succeeded {
		return nil
	}
	att, vt, dec, vr := resp.Responses[0].GetResponseRange(), resp.Responses[1].GetResponseRange(), resp.Responses[2].GetResponseRange(), resp.Responses[3].GetResponseRange()
	if len(vt.Kvs) > 0 && string(vt.Kvs[0].Value) == value {
		if len(vr.Kvs) > 0 && string(vr.Kvs[0].Value) != voter {
			return fmt.Errorf("%w: node %s's vote %q in attempt %d was cast by %s, not by this agent (%s): two agents run as node %s?",
				errNotMine, node, value, a, vr.Kvs[0].Value, voter, node)
		}
		return nil
	}
	if len(vt.Kvs) > 0 && len(vr.Kvs) > 0 && string(vr.Kvs[0].Value) != voter {
		return fmt.Errorf("%w: node %s's vote %q in attempt %d was cast by %s, not by this agent (%s)", errNotMine, node, vt.Kvs[0].Value, a, vr.Kvs[0].Value, voter)
	}
	if len(dec.Kvs) > 0 {
		return fmt.Errorf("%w: %s", errDecided, dec.Kvs[0].Value)
	}
	if len(att.Kvs) == 0 || string(att.Kvs[0].Value) != strconv.FormatInt(a, 10) {
		cur := "none"
		if len(att.Kvs) > 0 {
			cur = string(att.Kvs[0].Value)
		}
		return fmt.Errorf("%w: node %s may not vote in attempt %d: the current attempt is %s", ErrStale, node, a, cur)
	}
	return fmt.Errorf("%w: node %s already voted %q in attempt %d", ErrStale, node, vt.Kvs[0].Value, a)
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

// writeAbort decides abort for attempt a unless it is decided, and
// returns the decision that holds. Any participant may: before a
// decision, abort is always safe.
//
// Txn: if the decision key's CreateRevision is 0, put "abort: reason".
func writeAbort(ctx context.Context, cli *clientv3.Client, k keys, a int64, reason string) (string, error) {
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k.decision(a)), "=", 0)).
		Then(clientv3.OpPut(k.decision(a), abortValue(reason))).
		Else(clientv3.OpGet(k.decision(a))).Commit()
	if err != nil {
		return "", fmt.Errorf("etcd decide %s: %w", k.decision(a), err)
	}
	if resp.Succeeded {
		return abortValue(reason), nil
	}
	return string(resp.Responses[0].GetResponseRange().Kvs[0].Value), nil
}

// tryDecide writes attempt a's decision if the votes make one: abort as
// soon as a node voted abort, commit when every node of the plan voted
// prepared. It returns the decision that holds ("" if none yet) and the
// etcd revision its read of the votes saw (a watch from the next one
// misses nothing).
//
// The commit Txn compares that there is no decision, that a is still the
// current attempt, and that each node's vote key holds exactly
// "prepared": the decision can only be commit if every vote is.
func tryDecide(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan) (string, int64, error) {
	// The decision and the votes at one revision (a read-only Txn), not
	// the plan: at 1,000 nodes the plan is ~150 KB and this read is done
	// on every wake-up.
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.votes(a), clientv3.WithPrefix())).Commit()
	if err != nil {
		return "", 0, fmt.Errorf("etcd get %s: %w", k.att(a), err)
	}
	rev := resp.Header.Revision
	votes := map[string]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		votes[strings.TrimPrefix(string(kv.Key), k.votes(a))] = string(kv.Value)
	}
	if d := resp.Responses[0].GetResponseRange().Kvs; len(d) > 0 {
		if err := checkCommit(k, a, plan, string(d[0].Value), votes); err != nil {
			return "", rev, err
		}
		return string(d[0].Value), rev, nil
	}
	prepared := 0
	for _, n := range plan.Nodes {
		v, ok := votes[n.ID]
		if !ok {
			continue
		}
		if w, reason := splitValue(v); w == voteAbort {
			d, err := writeAbort(ctx, cli, k, a, fmt.Sprintf("node %s voted abort: %s", n.ID, reason))
			return d, rev, err
		}
		if v == votePrepared {
			prepared++
		}
	}
	if prepared < len(plan.Nodes) {
		return "", rev, nil
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(k.decision(a)), "=", 0),
		clientv3.Compare(clientv3.Value(k.attempt()), "=", strconv.FormatInt(a, 10)),
	}
	for _, n := range plan.Nodes {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(k.vote(a, n.ID)), "=", votePrepared))
	}
	tr, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(k.decision(a), decisionCommit)).Commit()
	if err != nil {
		return "", 0, fmt.Errorf("etcd decide %s: %w", k.decision(a), err)
	}
	if tr.Succeeded {
		return decisionCommit, tr.Header.Revision, nil
	}
	d, err := decision(ctx, cli, k, a)
	if err == nil && d == "" {
		// Not current any more, and not decided: whoever superseded it
		// decides abort; so may we.
		d, err = writeAbort(ctx, cli, k, a, "attempt superseded before its commit")
	}
	return d, tr.Header.Revision, err
}

// checkCommit refuses a commit decision that the commit Txn cannot have
// written: one read with a plan node's vote not "prepared" (votes are
// written once and never removed, so the Txn's compares held then and
// still hold). Such a decision was put there by hand or by another tool;
// a node that applied it could be new while another stays old.
func checkCommit(k keys, a int64, plan *Plan, d string, votes map[string]string) error {
	if w, _ := splitValue(d); w != decisionCommit {
		return nil
	}
	for _, n := range plan.Nodes {
		if v := votes[n.ID]; v != votePrepared {
			return fmt.Errorf("%w: %s is %q but node %s's vote is %q: not written by kvrflow's commit transaction; left undecided", ErrUntrusted, k.decision(a), d, n.ID, v)
		}
	}
	return nil
}

// waitDecision waits for attempt a's decision. It opens one watch (see
// watcher), calls tryDecide, and calls it again on every change the
// watch brings, and after deadline writes abort. A
// zero deadline never aborts. ctx bounds the wait. With retry, an etcd
// that stops answering is waited for (until ctx ends); without, its error
// is returned.
//
// The coordinator watches the whole attempt (votes too: every vote wakes
// it, and it decides when the last one arrives); an agent watches only the
// decision key. An agent's own tryDecide right after its vote is a
// linearizable read after its write: the last voter's sees every vote,
// so it decides; if it crashes first, the coordinator, the voter's
// recovery or the timeout does. So each vote wakes one process, not N.
func waitDecision(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan, deadline time.Time, retry bool) (string, error) {
	return waitDecisionOn(ctx, cli, k, a, plan, deadline, retry, k.decision(a))
}

// waitAll is waitDecision that watches the whole attempt (the coordinator).
func waitAll(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan, deadline time.Time, retry bool) (string, error) {
	return waitDecisionOn(ctx, cli, k, a, plan, deadline, retry, k.att(a))
}

func waitDecisionOn(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan, deadline time.Time, retry bool, watched string) (string, error) {
	pause := 100 * time.Millisecond
	var w *watcher
	defer func() { w.close() }()
	for {
		if w == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
			var err error
			if w, err = openWatch(ctx, cli, watched, deadline); err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					// Ended by the deadline: the read decides abort.
				} else if !retry {
					return "", err
				}
				time.Sleep(pause)
				pause = min(2*pause, 2*time.Second)
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		d, _, err := tryDecide(rctx, cli, k, a, plan)
		if err == nil && d == "" && !deadline.IsZero() && !time.Now().Before(deadline) {
			d, err = writeAbort(rctx, cli, k, a, "not every node voted prepared within the prepare timeout")
		}
		cancel()
		if err != nil && retry && ctx.Err() == nil && !errors.Is(err, ErrUntrusted) {
			time.Sleep(pause)
			pause = min(2*pause, 2*time.Second)
			continue
		}
		if err != nil || d != "" {
			return d, err
		}
		if w != nil && !w.next() {
			// The deadline, compaction, or no leader: read again (at
			// the deadline the read decides abort).
			w.close()
			w = nil
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
		}
	}
}

// A watcher is one etcd watch kept open across the reads it guards.
//
// etcd delivers the events of a watch created at a revision it has
// already passed from a background loop that runs every 100 ms; a watch
// created at its current revision gets each event as it is written. So
// the watch is opened first, from the current revision (its created
// notification says when it is), and the state is read after it: a
// change before the read is in the read, one after it comes as an event,
// and no event waits for that loop. Kept open, the watch stays current
// however many events arrive while the reader reads.
type watcher struct {
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

// openWatch opens a watch on every key under prefix, from etcd's next
// revision on, and returns once etcd has created it. The watch ends at
// deadline (zero: never) or with ctx. An etcd that has not created it
// within RequestTimeout is an error.
func openWatch(ctx context.Context, cli *clientv3.Client, prefix string, deadline time.Time) (*watcher, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	if !deadline.IsZero() {
		cancel()
		wctx, cancel = context.WithDeadline(clientv3.WithRequireLeader(ctx), deadline)
	}
	// clientv3's Watch blocks until its stream to etcd is up: the timer
	// ends the watch (and so that wait) if etcd has not created it in
	// time.
	var created, late atomic.Bool
	t := time.AfterFunc(RequestTimeout, func() {
		if !created.Load() {
			late.Store(true)
			cancel()
		}
	})
	defer t.Stop()
	ch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	wr, ok := <-ch
	if ok && wr.Created && wr.Err() == nil {
		created.Store(true)
		if !late.Load() {
			return &watcher{ch: ch, cancel: cancel}, nil
		}
	}
	cancel()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case late.Load():
		return nil, fmt.Errorf("etcd watch %s: not created within %v: %w", prefix, RequestTimeout, context.DeadlineExceeded)
	case wr.Err() != nil:
		// As etcd's other calls return it: a refusal (permission
		// denied, ...) matches rpctypes' errors.
		return nil, fmt.Errorf("etcd watch %s: %w", prefix, watchErr(wr.Err()))
	}
	return nil, fmt.Errorf("etcd watch %s: ended before it was created: %w", prefix, context.Cause(wctx))
}

// watchErr is err, the error of a watch etcd refused, as rpctypes' error
// of the same description where there is one. clientv3 passes a refused
// watch's gRPC status as text ("rpc error: code = PermissionDenied desc =
// etcdserver: permission denied"), which rpctypes.Error alone does not
// map: its description is looked up instead.
func watchErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		if e, ok := rpctypes.Error(errors.New(msg[i+len("desc = "):])).(rpctypes.EtcdError); ok {
			return e
		}
	}
	return rpctypes.Error(err)
}

// next waits for the next change under the watched prefix and reports
// whether one came; false when the watch ended (its deadline, ctx,
// compaction, no leader): the caller reads again and opens another.
func (w *watcher) next() bool {
	for wr := range w.ch {
		if wr.Err() != nil {
			return false
		}
		if len(wr.Events) > 0 {
			return true
		}
	}
	return false
}

// close ends the watch; a nil watcher is closed already.
func (w *watcher) close() {
	if w != nil {
		w.cancel()
	}
}

// readReport reads attempt a (the current one if 0) of the restore.
func readReport(ctx context.Context, cli *clientv3.Client, k keys, name string, a int64) (*Report, *attemptRecord, int64, error) {
	if a == 0 {
		var err error
		if a, _, err = current(ctx, cli, k); err != nil {
			return nil, nil, 0, err
		}
		if a == 0 {
			return nil, nil, 0, fmt.Errorf("%w: no cluster restore named %s", ErrNotFound, name)
		}
	}
	// The plan, votes, outcomes and the decision at one revision, in one
	// request.
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(k.plan(a)), clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.votes(a), clientv3.WithPrefix()),
		clientv3.OpGet(k.outcomes(a), clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("etcd get %s: %w", k.att(a), err)
	}
	rec, err := attemptOfKVs(k, a, resp.Responses[0].GetResponseRange().Kvs)
	if err != nil {
		return nil, nil, 0, err
	}
	vals := map[string]string{}
	for _, r := range resp.Responses[1:] {
		for _, kv := range r.GetResponseRange().Kvs {
			vals[string(kv.Key)] = string(kv.Value)
		}
	}
	rep := &Report{Name: name, Attempt: a, Outcome: Undecided}
	rep.Decision, rep.Reason = splitValue(vals[k.decision(a)])
	all, want, contra := true, outcomeRolledBack, false
	if rep.Decision == decisionCommit {
		want = outcomeCommitted
	}
	for _, n := range rec.Plan.Nodes {
		nr := NodeReport{ID: n.ID, Outcome: vals[k.outcome(a, n.ID)]}
		nr.Vote, nr.Reason = splitValue(vals[k.vote(a, n.ID)])
		if nr.Outcome == "" {
			all = false
		} else if rep.Decision != "" && nr.Outcome != want {
			contra = true
		}
		rep.Nodes = append(rep.Nodes, nr)
	}
	switch {
	case contra:
		// A node's outcome contradicts the decision: never reported as
		// the decision's.
		rep.Outcome = Mixed
	case all && rep.Decision == decisionCommit:
		rep.Outcome = Committed
	case all && rep.Decision == decisionAbort:
		rep.Outcome = Aborted
	}
	return rep, rec, resp.Header.Revision, nil
}
