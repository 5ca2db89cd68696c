package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
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
	return currentOf(k, resp.Kvs)
}

// currentOf is current from what a Get of the attempt key returned. A
// value publish cannot have written (not a decimal number, or not one of
// 1, 2, ...) is ErrUntrusted: publish writes nothing over it (an attempt
// 0 or -1 would be one no agent serves).
func currentOf(k keys, kvs []*mvccpb.KeyValue) (int64, int64, error) {
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	a, ok := attemptNumber(kvs[0].Value)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s holds %q, not an attempt number (1, 2, ...): etcd was edited by hand", ErrUntrusted, k.attempt(), kvs[0].Value)
	}
	return a, kvs[0].ModRevision, nil
}

// attemptNumber parses v, a value of attempts/NAME, as publish writes it
// (strconv.FormatInt): a decimal number from 1, with a next one (no sign,
// space, leading zero or overflow). Any other text is none: vote's and
// the commit's Txns compare the value's text with FormatInt's, so an
// attempt taken from "01" could only be refused there, after the node's
// restore. publish writes no number this refuses (MaxInt64).
func attemptNumber(v []byte) (int64, bool) {
	a, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || a <= 0 || a == math.MaxInt64 || strconv.FormatInt(a, 10) != string(v) {
		return 0, false
	}
	return a, true
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
	rec, err := parseAttemptRecord(kvs[0].Value)
	if err != nil {
		return nil, err
	}
	rec.rev = kvs[0].CreateRevision
	return rec, nil
}

// publish makes plan the restore's current attempt and returns it. An
// undecided earlier attempt is first decided abort (safe: nothing is
// decided yet, so no node commits it). With follow set and a current
// attempt of the same plan, that attempt is returned instead; if etcd
// does not answer the read of its plan, the error is returned and
// nothing written (only a plan that differs, is missing or is not
// trusted is superseded).
//
// Txn: if attempt's ModRevision is what was read (absent: CreateRevision
// 0) and the earlier attempt has a decision, put attempt = N+1 and its
// plan. Two coordinators racing: one wins, the other reads again.
//
// The first Txn is made without a read, as if the name had no attempt
// yet (a new restore, the common case: one round trip); if it has one,
// the Txn fails and its Else returns the attempt key, which is then
// what was read.
func publish(ctx context.Context, cli *clientv3.Client, k keys, plan *Plan, timeout time.Duration, follow bool) (int64, bool, error) {
	a, rev := int64(0), int64(0) // as read (the first time: assumed)
	for {
		if a > 0 && follow {
			rec, err := loadAttempt(ctx, cli, k, a)
			if err == nil && reflect.DeepEqual(&rec.Plan, plan) {
				return a, true, nil
			}
			if err != nil && !errors.Is(err, ErrBadPlan) && !errors.Is(err, ErrUntrusted) {
				// etcd did not answer: no evidence the plan differs,
				// so no reason to supersede a live attempt.
				return 0, false, err
			}
		}
		if _, ok := attemptNumber([]byte(strconv.FormatInt(a+1, 10))); !ok {
			// a is the last number attemptNumber takes: the next one
			// would be ignored by every agent, and refused by publish
			// and status as a hand edit.
			return 0, false, fmt.Errorf("%w: %s holds %d, after which no attempt number is left: etcd was edited by hand; publish under another name", ErrUntrusted, k.attempt(), a)
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
		).Else(clientv3.OpGet(k.att(next), clientv3.WithPrefix(), clientv3.WithCountOnly()), clientv3.OpGet(k.attempt())).Commit()
		if err != nil {
			return 0, false, fmt.Errorf("etcd publish %s: %w", k.plan(next), err)
		}
		if resp.Succeeded {
			return next, false, nil
		}
		na, nrev, err := currentOf(k, resp.Responses[1].GetResponseRange().Kvs)
		if err != nil {
			return 0, false, err
		}
		if nrev != rev {
			// The name has an attempt the first Txn did not assume, or
			// another coordinator published since the read (its
			// attempt's keys are what the compare found): follow or
			// supersede that attempt.
			a, rev = na, nrev
			continue
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

// errRepublished is returned by vote when attempt a's plan is not the
// one the voter read: the restore's keys were deleted and it was
// published again under the same name (attempt a once more, another
// plan). The voter's run is of the earlier publish: it must not count in
// this one, nor decide it.
var errRepublished = fmt.Errorf("%w: restore published again since it was read", ErrStale)

// vote records node's vote in attempt a, once, with who cast it (voter:
// host, database and run). A vote written returns the attempt's tally as
// it stood right after it (read in the same Txn): the last voter's shows
// every vote, so it can decide without another read. A vote already
// there returns no tally.
//
// Txn: if attempt's value is a (fencing: a stale agent of an earlier
// attempt cannot vote in a later one), the plan key's CreateRevision is
// rev (the publish the voter read, unless rev is 0; else errRepublished),
// the vote key does not exist, and there is no decision yet: put the vote
// and the voter, and get the decision and the votes. A vote found already
// there with the same value and the same voter is success (a restarted
// agent voting again for the same run); another voter's is errNotMine.
func vote(ctx context.Context, cli *clientv3.Client, k keys, a, rev int64, node, value, voter string) (*tally, error) {
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(k.attempt()), "=", strconv.FormatInt(a, 10)),
		clientv3.Compare(clientv3.CreateRevision(k.vote(a, node)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(k.decision(a)), "=", 0),
	}
	if rev != 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k.plan(a)), "=", rev))
	}
	resp, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(k.vote(a, node), value), clientv3.OpPut(k.voter(a, node), voter),
		clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.votes(a), clientv3.WithPrefix()),
	).Else(
		clientv3.OpGet(k.attempt()), clientv3.OpGet(k.vote(a, node)), clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.voter(a, node)),
		clientv3.OpGet(k.plan(a), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd vote %s: %w", k.vote(a, node), err)
	}
	if resp.Succeeded {
		return tallyOf(k, a, resp.Responses[2].GetResponseRange().Kvs, resp.Responses[3].GetResponseRange().Kvs), nil
	}
	if p := resp.Responses[4].GetResponseRange().Kvs; rev != 0 && (len(p) == 0 || p[0].CreateRevision != rev) {
		return nil, fmt.Errorf("%w: node %s may not vote in attempt %d: %s is not the plan it read (created at revision %d): the restore's keys were deleted since (and it may have been published again)",
			errRepublished, node, a, k.plan(a), rev)
	}
	att, vt, dec, vr := resp.Responses[0].GetResponseRange(), resp.Responses[1].GetResponseRange(), resp.Responses[2].GetResponseRange(), resp.Responses[3].GetResponseRange()
	if len(vt.Kvs) > 0 && string(vt.Kvs[0].Value) == value {
		if len(vr.Kvs) > 0 && string(vr.Kvs[0].Value) != voter {
			return nil, fmt.Errorf("%w: node %s's vote %q in attempt %d was cast by %s, not by this agent (%s): two agents run as node %s?",
				errNotMine, node, value, a, vr.Kvs[0].Value, voter, node)
		}
		return nil, nil
	}
	if len(vt.Kvs) > 0 && len(vr.Kvs) > 0 && string(vr.Kvs[0].Value) != voter {
		return nil, fmt.Errorf("%w: node %s's vote %q in attempt %d was cast by %s, not by this agent (%s)", errNotMine, node, vt.Kvs[0].Value, a, vr.Kvs[0].Value, voter)
	}
	if len(dec.Kvs) > 0 {
		return nil, fmt.Errorf("%w: %s", errDecided, dec.Kvs[0].Value)
	}
	if len(att.Kvs) == 0 || string(att.Kvs[0].Value) != strconv.FormatInt(a, 10) {
		cur := "none"
		if len(att.Kvs) > 0 {
			cur = string(att.Kvs[0].Value)
		}
		return nil, fmt.Errorf("%w: node %s may not vote in attempt %d: the current attempt is %s", ErrStale, node, a, cur)
	}
	return nil, fmt.Errorf("%w: node %s already voted %q in attempt %d", ErrStale, node, vt.Kvs[0].Value, a)
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

// decideAbort is writeAbort for a participant that applies the decision
// it returns: a commit found there instead of its abort (the last voter's,
// which won the race, or one put by hand) is read again with the votes
// and checked (checkCommit), as every decision read is. Without that
// check a forged commit written between a participant's read and its
// abort would be applied by it, though a node voted abort.
func decideAbort(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan, reason string) (string, error) {
	d, err := writeAbort(ctx, cli, k, a, reason)
	if err != nil {
		return "", err
	}
	if w, _ := splitValue(d); w != decisionCommit {
		return d, nil
	}
	t, err := readTally(ctx, cli, k, a)
	if err != nil {
		return "", err
	}
	if t.decision == "" {
		// Deleted since (by hand): not a decision to apply.
		return "", fmt.Errorf("%w: %s held %q, then nothing: not written by kvrflow; left undecided", ErrUntrusted, k.decision(a), d)
	}
	if err := checkCommit(k, a, plan, t.decision, t.votes); err != nil {
		return "", err
	}
	return t.decision, nil
}

// A tally is an attempt's decision and votes as one read saw them (or as
// a watch brought them since).
type tally struct {
	decision string            // "" if none seen
	votes    map[string]string // node id -> vote
}

// readTally reads attempt a's decision and votes at one revision (a
// read-only Txn), not the plan: at 1,000 nodes the plan is ~150 KB.
func readTally(ctx context.Context, cli *clientv3.Client, k keys, a int64) (*tally, error) {
	resp, err := cli.Txn(ctx).Then(clientv3.OpGet(k.decision(a)), clientv3.OpGet(k.votes(a), clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", k.att(a), err)
	}
	return tallyOf(k, a, resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs), nil
}

// tallyOf is the tally of what Gets of the decision key and the votes
// returned.
func tallyOf(k keys, a int64, decision, votes []*mvccpb.KeyValue) *tally {
	t := &tally{votes: map[string]string{}}
	for _, kv := range votes {
		t.votes[strings.TrimPrefix(string(kv.Key), k.votes(a))] = string(kv.Value)
	}
	if len(decision) > 0 {
		t.decision = string(decision[0].Value)
	}
	return t
}

// apply brings the tally up to date with a watch's events on attempt a
// of plan: a vote written is counted, one deleted (by hand) forgotten.
// It reports false when the tally must be read again: an event wrote the
// decision, and it is a commit while the tally lacks a vote of the plan
// (an agent's watch of the decision key alone brings no vote). A commit
// is checked against the votes (checkCommit): a tally that has every
// vote, from the read after the watch opened and the watch's events
// since (the coordinator's), is what a read would return; an abort needs
// no votes.
func (t *tally) apply(k keys, a int64, plan *Plan, evs []*clientv3.Event) bool {
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		switch {
		case key == k.decision(a) && ev.Type == clientv3.EventTypePut:
			t.decision = string(ev.Kv.Value)
		case key == k.decision(a):
			return false // deleted by hand: read what is there
		case !strings.HasPrefix(key, k.votes(a)):
		case ev.Type == clientv3.EventTypePut:
			t.votes[strings.TrimPrefix(key, k.votes(a))] = string(ev.Kv.Value)
		default:
			delete(t.votes, strings.TrimPrefix(key, k.votes(a)))
		}
	}
	if w, _ := splitValue(t.decision); w != decisionCommit {
		return true
	}
	for _, n := range plan.Nodes {
		if _, ok := t.votes[n.ID]; !ok {
			return false
		}
	}
	return true
}

// allPrepared reports whether every node of plan voted prepared in t,
// with no decision seen.
func (t *tally) allPrepared(plan *Plan) bool {
	if t.decision != "" {
		return false
	}
	for _, n := range plan.Nodes {
		if t.votes[n.ID] != votePrepared {
			return false
		}
	}
	return true
}

// tryDecide reads attempt a's decision and votes and settles it.
func tryDecide(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan) (string, error) {
	t, err := readTally(ctx, cli, k, a)
	if err != nil {
		return "", err
	}
	return settle(ctx, cli, k, a, plan, t)
}

// settle returns the decision tally t holds, or writes the one its votes
// make: abort as soon as a node voted abort, commit when every node of
// the plan voted prepared; else "" (none yet). Only then does it call
// etcd: a tally that decides nothing costs no request.
//
// The commit Txn compares that there is no decision, that a is still the
// current attempt, and that each node's vote key holds exactly
// "prepared": the decision can only be commit if every vote is, whatever
// the tally (read earlier, or brought up to date by a watch) says.
func settle(ctx context.Context, cli *clientv3.Client, k keys, a int64, plan *Plan, t *tally) (string, error) {
	if t.decision != "" {
		if err := checkCommit(k, a, plan, t.decision, t.votes); err != nil {
			return "", err
		}
		return t.decision, nil
	}
	prepared := 0
	for _, n := range plan.Nodes {
		v, ok := t.votes[n.ID]
		if !ok {
			continue
		}
		if w, reason := splitValue(v); w == voteAbort {
			return decideAbort(ctx, cli, k, a, plan, fmt.Sprintf("node %s voted abort: %s", n.ID, reason))
		}
		if v == votePrepared {
			prepared++
		}
	}
	if prepared < len(plan.Nodes) {
		return "", nil
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(k.decision(a)), "=", 0),
		clientv3.Compare(clientv3.Value(k.attempt()), "=", strconv.FormatInt(a, 10)),
	}
	for _, n := range plan.Nodes {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(k.vote(a, n.ID)), "=", votePrepared))
	}
	tr, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(k.decision(a), decisionCommit)).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		// The plan has more nodes than this etcd lets one Txn compare:
		// the commit can never be written, so no node can commit; abort
		// now, saying why, rather than retry the refusal for ever.
		return decideAbort(ctx, cli, k, a, plan, fmt.Sprintf("etcd refused the commit transaction of %d compares (%v): run etcd with --max-txn-ops of at least %d", len(cmps), err, len(cmps)))
	}
	if err != nil {
		return "", fmt.Errorf("etcd decide %s: %w", k.decision(a), err)
	}
	if tr.Succeeded {
		return decisionCommit, nil
	}
	// Decided already (read it, with the votes it is checked against),
	// or not current any more: whoever superseded it decides abort; so
	// may we.
	if t, err = readTally(ctx, cli, k, a); err != nil {
		return "", err
	}
	if t.decision != "" {
		return settle(ctx, cli, k, a, plan, t)
	}
	return decideAbort(ctx, cli, k, a, plan, "attempt superseded before its commit")
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

// A wait is one participant's wait for attempt a's decision, on one
// watch (see watcher) kept open across the reads it guards.
//
// The coordinator watches the whole attempt (k.att): every vote comes as
// an event and is counted in its tally, and it writes the decision when
// the tally makes one, without reading etcd on every vote. An agent's own
// vote's Txn returns the tally as it stood after the vote (a linearizable
// read after its write), so the last voter sees every vote and decides;
// if it crashes first, the coordinator, the voter's recovery or the
// timeout does. An agent watches only the decision key: each vote wakes
// one process, not N (watching every vote, N² events per restore, cost
// more at 10 nodes than the read each agent makes of a commit when it
// comes), and no vote costs a read.
type wait struct {
	cli      *clientv3.Client
	k        keys
	a        int64
	plan     *Plan
	deadline time.Time // abort then (zero: never)
	retry    bool      // wait for an etcd that stops answering (until ctx ends)
	watched  string    // k.decision(a) (an agent) or k.att(a) (the coordinator)
	w        *watcher  // nil until opened, and after it ended
	// grace, if set, is how long a tally of every vote prepared (read,
	// or brought by the watch) waits for the decision before settle
	// writes it: the coordinator and the agents that watch every vote
	// leave the commit to the last voter (its own vote's tally shows
	// every vote, and it writes the commit at once) unless that voter
	// died between its vote and its commit. N writers racing would cost
	// etcd N Txns through raft that fail, and as many reads.
	grace time.Duration
}

// lastVoterGrace is the coordinator's wait.grace.
const lastVoterGrace = 500 * time.Millisecond

// open opens the wait's watch if it has none. It reports whether it
// opened one (false if one was open, or on error).
func (wt *wait) open(ctx context.Context) (bool, error) {
	if wt.w != nil {
		return false, nil
	}
	w, err := openWatch(ctx, wt.cli, wt.watched)
	if err != nil {
		return false, err
	}
	wt.w = w
	return true, nil
}

// close ends the wait's watch.
func (wt *wait) close() {
	wt.w.close()
	wt.w = nil
}

// decision waits for the attempt's decision and returns it; past the
// deadline it writes abort. first, if not nil, is a tally read after the
// wait's watch was opened (a vote's): it saves the first read. A tally
// read before the watch was opened would miss what was written between.
func (wt *wait) decision(ctx context.Context, first *tally) (string, error) {
	pause := 100 * time.Millisecond
	t := first
	if wt.w == nil {
		t = nil
	}
	// The caller's own vote's tally, if it shows every vote prepared,
	// makes the caller the last voter: it settles at once. A tally of
	// every vote prepared from a read or from events waits wt.grace for
	// the last voter's commit first.
	own := t != nil
	expired := func() bool { return !wt.deadline.IsZero() && !time.Now().Before(wt.deadline) }
	var settleAt time.Time // when a tally of every vote prepared may write the commit
	for {
		if wt.w == nil && !expired() {
			if _, err := wt.open(ctx); err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				if expired() {
					// Ended by the deadline: the read decides abort.
				} else if !wt.retry {
					return "", err
				}
				time.Sleep(pause)
				pause = min(2*pause, 2*time.Second)
				continue
			}
			t = nil // read after the watch is open
		}
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		var d string
		var err error
		if t == nil {
			t, err = readTally(rctx, wt.cli, wt.k, wt.a)
		}
		holding := false
		if err == nil && wt.grace > 0 && !own && wt.w != nil && !expired() && t.allPrepared(wt.plan) {
			if settleAt.IsZero() {
				settleAt = time.Now().Add(wt.grace)
			}
			holding = time.Now().Before(settleAt)
		}
		if err == nil && !holding {
			d, err = settle(rctx, wt.cli, wt.k, wt.a, wt.plan, t)
		}
		own = false
		if err == nil && d == "" && expired() {
			d, err = decideAbort(rctx, wt.cli, wt.k, wt.a, wt.plan, "not every node voted prepared within the prepare timeout")
		}
		cancel()
		if err != nil && wt.retry && ctx.Err() == nil && !errors.Is(err, ErrUntrusted) {
			t = nil
			time.Sleep(pause)
			pause = min(2*pause, 2*time.Second)
			continue
		}
		if err != nil || d != "" {
			return d, err
		}
		if wt.w == nil {
			continue // past the deadline: the next read decides abort
		}
		until := wt.deadline
		if holding && (until.IsZero() || settleAt.Before(until)) {
			until = settleAt
		}
		evs, ok := wt.w.next(until)
		switch {
		case !ok:
			// Compaction, no leader, ctx: read again, on a new watch.
			wt.close()
			t = nil
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
		case len(evs) == 0 && holding && (wt.deadline.IsZero() || time.Now().Before(wt.deadline)):
			// The grace is over: settle writes the commit.
		case len(evs) == 0:
			t = nil // the deadline: the read decides abort
		case !t.apply(wt.k, wt.a, wt.plan, evs):
			t = nil // a commit, and a vote not seen: read it with the votes
		}
	}
}

// readReport reads attempt a (the current one if 0) of the restore.
func readReport(ctx context.Context, cli *clientv3.Client, k keys, name string, a int64) (*Report, *attemptRecord, error) {
	if a == 0 {
		var err error
		if a, _, err = current(ctx, cli, k); err != nil {
			return nil, nil, err
		}
		if a == 0 {
			return nil, nil, fmt.Errorf("%w: no cluster restore named %s", ErrNotFound, name)
		}
	}
	// The plan, votes, outcomes and the decision at one revision, in one
	// request: a Get of the attempt's keys (etcd serves a Get for about
	// half the CPU of a Txn of four Gets).
	resp, err := cli.Get(ctx, k.att(a), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("etcd get %s: %w", k.att(a), err)
	}
	var planKVs []*mvccpb.KeyValue
	vals := map[string]string{}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == k.plan(a) {
			planKVs = append(planKVs, kv)
		}
		vals[string(kv.Key)] = string(kv.Value)
	}
	rec, err := attemptOfKVs(k, a, planKVs)
	if err != nil {
		return nil, nil, err
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
	return rep, rec, nil
}
