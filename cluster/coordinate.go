package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow/steps"
)

// Coordinate publishes plan as a new attempt of the restore plan.Name and
// waits for the decision and every node's outcome. It returns the Report;
// the error is nil when every node committed, matches ErrAborted when the
// decision was abort and every node reported its old database kept, and
// ErrUndecided when no decision or not every outcome arrived within
// o.Wait (the state stays in etcd: run again, or ask Status). A plan that
// does not check is an ErrBadPlan, and nothing is published.
//
// Run again with the same plan after a crash, it follows the current
// attempt rather than publishing a second one (unless o.NewAttempt).
// Publishing a new attempt first decides abort for an undecided earlier
// one. Past the prepare timeout, Coordinate decides abort if not every
// node voted.
func Coordinate(ctx context.Context, cli *clientv3.Client, prefix string, plan *Plan, o CoordinateOptions) (*Report, error) {
	if err := plan.Check(); err != nil {
		return nil, err
	}
	if o.PrepareTimeout <= 0 {
		o.PrepareTimeout = DefaultPrepareTimeout
	}
	if o.Wait <= 0 {
		o.Wait = o.PrepareTimeout + time.Minute
	}
	k := keysOf(prefix, plan.Name)
	pctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	a, followed, err := publish(pctx, cli, k, plan, o.PrepareTimeout, !o.NewAttempt)
	cancel()
	if errors.Is(err, ErrUntrusted) {
		return nil, err // nothing published
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecided, err)
	}
	deadline := time.Now().Add(o.PrepareTimeout)
	if followed {
		if rec, err := loadAttempt(ctx, cli, k, a); err == nil {
			deadline = rec.Published.Add(rec.PrepareTimeout)
		}
		o.Log.Info().Str("restore", plan.Name).Int64("attempt", a).Msg("following the current attempt of the same plan")
	} else {
		o.Log.Info().Str("restore", plan.Name).Int64("attempt", a).Int("nodes", len(plan.Nodes)).Msg("published")
	}
	if err := o.Faults.Hit(PointPublished); err != nil {
		return report(ctx, cli, k, plan.Name, a, err)
	}
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	// One watch on the whole attempt, for the votes and then for the
	// outcomes.
	wt := &wait{cli: cli, k: k, a: a, plan: plan, deadline: deadline, retry: true, watched: k.att(a), grace: lastVoterGrace}
	defer wt.close()
	d, err := wt.decision(wctx, nil)
	if err != nil {
		return report(ctx, cli, k, plan.Name, a, fmt.Errorf("attempt %d: no decision: %w", a, err))
	}
	o.Log.Info().Str("restore", plan.Name).Int64("attempt", a).Str("decision", d).Msg("decided")
	if err := o.Faults.Hit(PointCoordDecided); err != nil {
		return report(ctx, cli, k, plan.Name, a, err)
	}
	// The outcomes: read once on the open watch, then counted from its
	// events; the report is read again once every node has one, or at
	// once when one contradicts the decision (the report is mixed then,
	// whatever the others say).
	nodes := map[string]bool{}
	for _, n := range plan.Nodes {
		nodes[n.ID] = true
	}
	want := outcomeRolledBack
	if w, _ := splitValue(d); w == decisionCommit {
		want = outcomeCommitted
	}
	var have map[string]bool // nil: read
	for {
		if opened, err := wt.open(wctx); err != nil {
			if wctx.Err() != nil {
				return report(ctx, cli, k, plan.Name, a, fmt.Errorf("attempt %d decided %s; not every node reported its outcome: %w", a, d, wctx.Err()))
			}
			o.Log.Warn().Err(err).Msg("etcd did not answer; trying again")
			time.Sleep(500 * time.Millisecond)
			continue
		} else if opened {
			have = nil
		}
		if have == nil || len(have) == len(nodes) {
			rctx, rcancel := context.WithTimeout(wctx, RequestTimeout)
			rep, _, err := readReport(rctx, cli, k, plan.Name, a)
			rcancel()
			if err != nil {
				if wctx.Err() != nil {
					return report(ctx, cli, k, plan.Name, a, err)
				}
				o.Log.Warn().Err(err).Msg("etcd did not answer; trying again")
				time.Sleep(500 * time.Millisecond)
				continue
			}
			switch rep.Outcome {
			case Committed:
				return rep, nil
			case Aborted:
				return rep, fmt.Errorf("%w: %s: %s", ErrAborted, plan.Name, rep.Reason)
			case Mixed:
				return rep, fmt.Errorf("%w: cluster restore %s attempt %d decided %s, but a node reports another outcome: see kvrflow cluster status",
					steps.ErrInconsistent, plan.Name, a, d)
			}
			have = map[string]bool{}
			for _, n := range rep.Nodes {
				if n.Outcome != "" {
					have[n.ID] = true
				}
			}
		}
		evs, ok := wt.w.next(time.Time{})
		if !ok {
			wt.close()
			if wctx.Err() != nil {
				return report(ctx, cli, k, plan.Name, a, fmt.Errorf("attempt %d decided %s; not every node reported its outcome: %w", a, d, wctx.Err()))
			}
			continue
		}
		for _, ev := range evs {
			if n := strings.TrimPrefix(string(ev.Kv.Key), k.outcomes(a)); ev.Type == clientv3.EventTypePut && n != string(ev.Kv.Key) && nodes[n] {
				have[n] = true
				if string(ev.Kv.Value) != want {
					have = nil // read: mixed
					break
				}
			}
		}
	}
}

// report returns the attempt's report as etcd has it now, with cause as
// an ErrUndecided.
func report(ctx context.Context, cli *clientv3.Client, k keys, name string, a int64, cause error) (*Report, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
	defer cancel()
	rep, _, err := readReport(ctx, cli, k, name, a)
	if err != nil {
		rep = &Report{Name: name, Attempt: a, Outcome: Undecided}
	}
	return rep, fmt.Errorf("%w: %s: %w", ErrUndecided, name, cause)
}

// Status returns the current attempt of the restore name as etcd holds
// it: each node's vote and outcome, and the decision. A name with no
// attempt is an ErrNotFound.
func Status(ctx context.Context, cli *clientv3.Client, prefix, name string) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	rep, _, err := readReport(ctx, cli, keysOf(prefix, name), name, 0)
	return rep, err
}

// DecisionOf returns the decision word ("commit", "abort", or "" if none
// yet) etcd holds for the attempt a node's run is tagged with (Tag). An
// attempt etcd does not hold with that id (another etcd, another prefix,
// etcd reset) is an error matching ErrNotFound. With abort set and no
// decision yet, it first decides abort (always safe before a decision)
// and returns the decision that holds. It is what `kvrflow recover
// --decision --etcd` checks the operator's decision against, so it
// trusts what an agent trusts: a commit that kvrflow's commit Txn cannot
// have written (a vote of the plan not prepared), or a plan rewritten
// after it was published, is an error matching ErrUntrusted.
func DecisionOf(ctx context.Context, cli *clientv3.Client, prefix, tag string, abort bool) (string, error) {
	name, a, id, ok := ParseTag(tag)
	if !ok {
		return "", fmt.Errorf("%w: %q is not a cluster restore attempt's tag", ErrNotFound, tag)
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	k := keysOf(prefix, name)
	resp, err := cli.Get(ctx, k.plan(a))
	if err != nil {
		return "", fmt.Errorf("etcd get %s: %w", k.plan(a), err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("%w: etcd holds no attempt %d of %s (%s)", ErrNotFound, a, name, k.plan(a))
	}
	rec, err := attemptOfKVs(k, a, resp.Kvs)
	if err != nil {
		return "", err
	}
	if rec.ID != id {
		return "", fmt.Errorf("%w: etcd's attempt %d of %s has id %s, the run's is %s", ErrNotFound, a, name, rec.ID, id)
	}
	// The decision with the votes: a commit is checked against them, as
	// an agent checks one before applying it.
	t, err := readTally(ctx, cli, k, a)
	if err != nil {
		return "", err
	}
	d := t.decision
	if err := checkCommit(k, a, &rec.Plan, d, t.votes); err != nil {
		return "", err
	}
	if d == "" && abort {
		if d, err = decideAbort(ctx, cli, k, a, &rec.Plan, "the operator's decision (kvrflow recover --decision abort)"); err != nil {
			return "", err
		}
	}
	w, _ := splitValue(d)
	return w, nil
}
