package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
)

// Agent performs this node's part of the published cluster restores.
//
// At start it recovers the node's database: a run found prepared asks
// etcd (the attempt's decision; with none yet, it votes prepared if its
// attempt is still current, or decides abort if it is not, and waits);
// a run interrupted earlier is rolled back, and the node then votes
// abort. When etcd does not answer the run stays prepared and the error
// matches ErrUndecided (exit 5).
//
// Then it handles each attempt that names o.Node: it checks the plan's
// entry against its own options (db, if given, must be o.DB; the source
// must start with one of o.AllowFrom, if any), restores up to prepared
// (kvrflow.Prepare), votes, waits for the decision, commits or rolls
// back, and records its outcome. With o.Once it returns after one
// attempt (the current one, unless this node already recorded its
// outcome there: then the next): the error is nil if the node committed,
// matches ErrAborted if it kept (or got back) its old database, and
// ErrUndecided if its run stays prepared or in flight.
func Agent(ctx context.Context, cli *clientv3.Client, prefix string, o AgentOptions) (*NodeReport, error) {
	if !validName.MatchString(o.Node) {
		return nil, fmt.Errorf("%w: node id %q: want 1-128 of A-Z a-z 0-9 . _ -", ErrBadPlan, o.Node)
	}
	if o.DB == "" {
		return nil, fmt.Errorf("%w: the agent needs its database directory (--db)", ErrBadPlan)
	}
	a := &agent{cli: cli, prefix: NormPrefix(prefix), o: o, resolved: map[string]bool{}, twin: map[string]bool{}, skip: map[string]int64{}}
	a.opts = o.Restore
	a.opts.DB, a.opts.Journal = o.DB, o.Journal
	if a.opts.Faults == nil {
		// One set for the whole agent: @N counts across its runs.
		f, err := fault.Parse(a.opts.FaultSpec)
		if err != nil {
			return nil, err
		}
		a.opts.Faults = f
	}
	if o.Restore.Log == nil {
		l := o.Log
		a.opts.Log = &l
	}
	if err := a.recoverLocal(ctx); err != nil {
		return nil, err
	}
	warm()
	dir := attemptsDir(prefix)
	var w *watcher
	defer func() { w.close() }()
	get := func() (*clientv3.GetResponse, error) {
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		defer cancel()
		resp, err := cli.Get(rctx, dir, clientv3.WithPrefix())
		if err != nil {
			return nil, fmt.Errorf("etcd get %s: %w", dir, err)
		}
		return resp, nil
	}
	var kvs []*mvccpb.KeyValue // what to look at: all (after a Get), or a watch's changes
	full := false              // kvs are every restore's (a Get)
	batchWarned := false       // skipRecorded's failure was warned of
	for {
		if w == nil {
			// A Get first: etcd refuses a client it does not permit
			// with an error of its own there (a refused watch says so
			// in text, see watchErr). Then the watch, then what was
			// published before it; after that only the watch's changes
			// are looked at, however many restores etcd holds.
			resp, err := get()
			if err == nil {
				if w, err = openWatch(ctx, cli, dir); err == nil {
					resp, err = get()
				}
			}
			if err != nil {
				w.close()
				w = nil
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if o.Once {
					return nil, fmt.Errorf("%w: %w", ErrUndecided, err)
				}
				o.Log.Warn().Err(err).Msg("etcd unreachable; trying again")
				time.Sleep(time.Second)
				continue
			}
			kvs, a.rescan, full = resp.Kvs, false, true
		} else if a.rescan {
			// Recovery resolved a run of another attempt (unskip):
			// look at every attempt again.
			resp, err := get()
			if err != nil {
				w.close()
				w = nil
				continue
			}
			kvs, a.rescan, full = resp.Kvs, false, true
		}
		if full {
			// Every restore etcd holds: those this node has an outcome
			// in are skipped without reading their reports (one request
			// per outcomeBatch restores, not one each).
			if err := a.skipRecorded(ctx, dir, kvs); err != nil {
				// Warned once per process: a failed restore makes
				// the loop read every restore again each second.
				ev := o.Log.Debug()
				if !batchWarned {
					ev, batchWarned = o.Log.Warn(), true
				}
				ev.Err(err).Msg("etcd refused the batched read of this node's outcomes and plans (its --max-txn-ops below 100, or a role that may not read them all?): reading each restore's report instead, one request each")
			}
			full = false
		}
		failed := false
		for _, kv := range kvs {
			name, att, seen, ok := a.unskipped(dir, kv)
			if !ok {
				continue
			}
			rep, err := a.handle(ctx, name, att)
			if rep == nil && err == nil {
				// Not a participant, or handled before: for good, as
				// an attempt's plan and this node's outcome in it are
				// written once. Not read again on the next wake,
				// unless attempts/NAME is written again: a restore of
				// the same name published anew after its keys were
				// deleted starts at attempt 1 again (another id).
				a.skip[seen] = kv.ModRevision
				continue
			}
			if o.Once {
				return rep, err
			}
			switch {
			case errors.Is(err, ErrAborted):
				// Done: the node kept (or got back) its database, its
				// outcome recorded; nothing to try again.
				o.Log.Info().Err(err).Str("restore", name).Int64("attempt", att).Msg("cluster restore aborted")
			case err != nil:
				failed = true
				o.Log.Error().Err(err).Str("restore", name).Int64("attempt", att).Msg("cluster restore")
			}
		}
		if failed {
			// Not done with an attempt (etcd did not answer, a run is in
			// flight): try again rather than wait for the next attempt,
			// from a full read.
			w.close()
			w = nil
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			if err := a.recoverLocal(ctx); err != nil {
				o.Log.Warn().Err(err).Msg("recovery")
			}
			continue
		}
		evs, ok := w.next(time.Time{})
		if !ok {
			w.close()
			w = nil
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		kvs = kvs[:0]
		for _, ev := range evs {
			if ev.Type == clientv3.EventTypePut {
				kvs = append(kvs, ev.Kv)
			}
		}
	}
}

// Batches of skipRecorded's reads, under etcd's --max-txn-ops (default
// 128): outcome keys (a few bytes each), and plans (≈150 bytes a node).
const (
	outcomeBatch = 100
	planBatch    = 50
)

// skipRecorded adds to a.skip every attempt of kvs (attempts/NAME keys,
// as a Get of attempts/ returned them) handle would find nothing to do
// in: those this node's outcome is recorded in (an outcome is written
// once; a key with an empty value is none, as in handle's report), then,
// of the others, those whose plan does not name this node.
// It reads the outcome keys, outcomeBatch per Txn, then those plans,
// planBatch per Txn, so that an agent's start costs a few requests
// however many finished restores etcd keeps, not a report read for each.
// Attempts whose outcome this process itself recorded while recovering
// (resolved, twin) are left to handle, which reports them; so is any
// plan that does not parse or names another restore (handle says so).
func (a *agent) skipRecorded(ctx context.Context, dir string, kvs []*mvccpb.KeyValue) error {
	type cand struct {
		seen, name string
		rev        int64
		k          keys
		att        int64
	}
	var cands []cand
	for _, kv := range kvs {
		name, att, seen, ok := a.unskipped(dir, kv)
		if !ok || a.mine(seen) {
			continue
		}
		cands = append(cands, cand{seen, name, kv.ModRevision, keysOf(a.prefix, name), att})
	}
	// read reads key(c) of every candidate, size to a Txn, and calls
	// got with each candidate and what its Get returned.
	read := func(cands []cand, size int, key func(cand) string, opts []clientv3.OpOption, got func(cand, []*mvccpb.KeyValue)) error {
		for len(cands) > 0 {
			batch := cands[:min(len(cands), size)]
			cands = cands[len(batch):]
			ops := make([]clientv3.Op, len(batch))
			for i, c := range batch {
				ops[i] = clientv3.OpGet(key(c), opts...)
			}
			rctx, cancel := a.rpc(ctx)
			resp, err := a.cli.Txn(rctx).Then(ops...).Commit()
			cancel()
			if err != nil {
				return fmt.Errorf("etcd get %s, ...: %w", key(batch[0]), err)
			}
			for i, r := range resp.Responses {
				got(batch[i], r.GetResponseRange().Kvs)
			}
		}
		return nil
	}
	var unrecorded []cand
	// With their values (a few bytes): a key with an empty one (put by
	// hand) is no outcome to handle, which reads the report, nor here.
	err := read(cands, outcomeBatch, func(c cand) string { return c.k.outcome(c.att, a.o.Node) }, nil,
		func(c cand, kvs []*mvccpb.KeyValue) {
			if len(kvs) > 0 && len(kvs[0].Value) > 0 {
				a.skip[c.seen] = c.rev
			} else {
				unrecorded = append(unrecorded, c)
			}
		})
	if err != nil {
		return err
	}
	return read(unrecorded, planBatch, func(c cand) string { return c.k.plan(c.att) }, nil,
		func(c cand, kvs []*mvccpb.KeyValue) {
			rec, err := attemptOfKVs(c.k, c.att, kvs)
			if err != nil || rec.Plan.Name != c.name {
				return
			}
			if _, ok := rec.Plan.Node(a.o.Node); !ok {
				a.skip[c.seen] = c.rev
			}
		})
}

// unskipped returns the restore name, attempt and NAME/ATTEMPT of kv, an
// attempts/NAME key under dir, unless it is none (a key of another prefix
// nested in this one, e.g. PREFIX/attempts/, or a value publish never
// writes) or a.skip holds that attempt as written at kv's revision.
func (a *agent) unskipped(dir string, kv *mvccpb.KeyValue) (string, int64, string, bool) {
	name := strings.TrimPrefix(string(kv.Key), dir)
	if !validName.MatchString(name) {
		return "", 0, "", false
	}
	att, ok := attemptNumber(kv.Value)
	if !ok {
		return "", 0, "", false
	}
	seen := fmt.Sprintf("%s/%d", name, att)
	if rev, ok := a.skip[seen]; ok && rev == kv.ModRevision {
		return "", 0, "", false
	}
	return name, att, seen, true
}

// mine reports whether this process recovered a run of attempt seen
// (NAME/ATTEMPT): its outcome is this process's to report (resolved,
// twin).
func (a *agent) mine(seen string) bool {
	for tag := range a.resolved {
		if strings.HasPrefix(tag, seen+"/") {
			return true
		}
	}
	for tag := range a.twin {
		if strings.HasPrefix(tag, seen+"/") {
			return true
		}
	}
	return false
}

type agent struct {
	cli    *clientv3.Client
	prefix string
	o      AgentOptions
	opts   kvrflow.Options // the node's restore options: DB, Journal, Log, Faults, ...
	// resolved lists the attempts (tags) whose outcome this process
	// recorded while recovering: Once reports them.
	resolved map[string]bool
	// first maps a prepared run's id to its first record's hash (its
	// voter), read before recovery opens the journal.
	first map[uint64]string
	// notMine lists the runs recovery rolled back because the node's
	// vote was another agent's: the node's outcome is that agent's.
	notMine map[uint64]bool
	// twin lists the attempts (tags) of those runs: Once reports them
	// rolled back (ErrAborted) without the node's outcome, which is the
	// other agent's.
	twin map[string]bool
	// skip lists the attempts (NAME/ATTEMPT) handle found nothing to do
	// in: not this node's, or its outcome already recorded; each with the
	// revision attempts/NAME was written at when it was read (the same
	// attempt number, published again after a cleanup, is another one).
	skip map[string]int64
	// rescan is set when skip lost an entry (unskip): the loop reads
	// every attempt again rather than only the watch's changes.
	rescan bool
}

func (a *agent) hit(point string) error { return a.opts.Faults.Hit(point) }

func (a *agent) rpc(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, RequestTimeout)
}

// undecided wraps err as ErrUndecided.
func undecided(err error) error {
	if errors.Is(err, ErrUndecided) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUndecided, err)
}

// recoverLocal finishes or rolls back every run in flight for the node's
// database, asking etcd for those prepared for a cluster restore, and
// records the outcome of each such run.
func (a *agent) recoverLocal(ctx context.Context) error {
	prepared, err := kvrflow.PreparedRuns(a.opts)
	if err != nil {
		return err
	}
	tags := map[uint64]string{}
	a.first, a.notMine = map[uint64]string{}, map[uint64]bool{}
	for _, p := range prepared {
		tags[p.ID] = p.Tag
		if r, err := kvrflow.ClusterRun(a.opts, p.Tag); err == nil && r != nil && r.ID == p.ID {
			a.first[p.ID] = r.FirstHash
		}
	}
	opts := a.opts
	opts.Decider = a.decider(tags)
	done, err := kvrflow.Recover(ctx, opts)
	for _, r := range done {
		if a.notMine[r.Run.ID] {
			a.o.Log.Warn().Uint64("run", r.Run.ID).Msg("rolled back: the node's vote was another agent's; its outcome is left to it")
			a.twin[tags[r.Run.ID]] = true
			a.unskip(tags[r.Run.ID])
			continue
		}
		if tag, ok := tags[r.Run.ID]; ok && !r.Run.InFlight() {
			k, att, rec, aerr := a.attemptOf(ctx, tag)
			if aerr != nil {
				// Not this etcd's attempt (or etcd did not answer): its
				// keys are not this run's to write.
				a.o.Log.Warn().Err(aerr).Uint64("run", r.Run.ID).Msg("outcome not recorded in etcd")
				continue
			}
			if r.Run.Outcome == outcomeRolledBack {
				// Interrupted before its vote, or decided abort: either
				// way the attempt can only be abort now.
				if err := a.voteAbort(ctx, k, att, rec.rev, "this node's run was interrupted and rolled back: "+r.Decision); err != nil {
					a.o.Log.Warn().Err(err).Uint64("run", r.Run.ID).Msg("outcome not recorded in etcd")
					continue
				}
			}
			if err := a.hit(PointBeforeOutcome); err != nil {
				return err
			}
			a.putOutcome(ctx, k, att, r.Run.Outcome)
			a.resolved[tag] = true
			a.unskip(tag)
		}
	}
	if err != nil {
		if errors.Is(err, fsm.ErrUndecided) || errors.Is(err, fsm.ErrInFlight) {
			return undecided(err)
		}
		return err
	}
	return nil
}

// unskip makes the loop handle the attempt a run's tag names again, to
// report what recovery did there.
func (a *agent) unskip(tag string) {
	if name, att, _, ok := ParseTag(tag); ok {
		delete(a.skip, fmt.Sprintf("%s/%d", name, att))
		a.rescan = true
	}
}

// attemptOf returns the keys, attempt number and published record of the
// attempt a run's tag names, checking that this etcd's attempt is that
// one (the same id); otherwise the error matches ErrUndecided.
func (a *agent) attemptOf(ctx context.Context, tag string) (keys, int64, *attemptRecord, error) {
	name, att, id, ok := ParseTag(tag)
	if !ok {
		return keys{}, 0, nil, fmt.Errorf("%w: %q is not a cluster restore attempt's tag", ErrUndecided, tag)
	}
	k := keysOf(a.prefix, name)
	rctx, cancel := a.rpc(ctx)
	rec, err := loadAttempt(rctx, a.cli, k, att)
	cancel()
	if err != nil {
		return k, att, nil, undecided(err)
	}
	if rec.ID != id {
		return k, att, nil, fmt.Errorf("%w: the run belongs to attempt %d of %s with id %s, but this etcd (prefix %s) holds attempt %d with id %s: another etcd, another prefix, or etcd was reset; decide with kvrflow recover --decision",
			ErrUndecided, att, name, id, a.prefix, att, rec.ID)
	}
	return k, att, rec, nil
}

// decider decides a prepared run of the node from etcd: the decision of
// its attempt; with none yet, the node votes prepared (if its attempt is
// still current; else it decides abort) and waits for the decision, up to
// the attempt's prepare timeout, then decides abort. An etcd that does not
// answer, or does not hold the run's attempt, leaves the run prepared
// (ErrUndecided).
func (a *agent) decider(tags map[uint64]string) fsm.Decider {
	return fsm.DeciderFunc(func(ctx context.Context, run uint64, state string) (fsm.Decision, error) {
		k, att, rec, err := a.attemptOf(ctx, tags[run])
		if err != nil {
			return 0, err
		}
		d, err := a.decide(ctx, k, att, rec, run)
		if err != nil {
			return 0, undecided(err)
		}
		if err := a.hit(PointDecided); err != nil {
			return 0, undecided(err)
		}
		a.o.Log.Info().Uint64("run", run).Str("restore", rec.Plan.Name).Int64("attempt", att).Str("decision", d).Msg("prepared run decided by etcd")
		if d == decisionCommit {
			return fsm.Resume, nil
		}
		return fsm.RollBack, nil
	})
}

// decide returns attempt att's decision word for a node whose run is
// prepared: it votes prepared (again, if it did before) and waits. A vote
// refused (a stale attempt, another vote of this node's, one cast by
// another agent for this node) means this run was never counted: abort is
// decided if nothing is, and the run rolls back whatever was decided.
func (a *agent) decide(ctx context.Context, k keys, att int64, rec *attemptRecord, run uint64) (string, error) {
	if a.first[run] == "" {
		// Without its voter the run could not tell its own vote from
		// another agent's: it stays prepared.
		return "", fmt.Errorf("run %d: its first journal record was not found: cannot tell its vote", run)
	}
	wt := &wait{cli: a.cli, k: k, a: att, plan: &rec.Plan, deadline: time.Now().Add(rec.PrepareTimeout), watched: k.decision(att), grace: lastVoterGrace}
	defer wt.close()
	if _, err := wt.open(ctx); err != nil {
		return "", err
	}
	rctx, cancel := a.rpc(ctx)
	t, err := vote(rctx, a.cli, k, att, rec.rev, a.o.Node, votePrepared, voter(a.first[run]))
	cancel()
	switch {
	case err == nil, errors.Is(err, errDecided):
	case errors.Is(err, ErrStale):
		if !errors.Is(err, errRepublished) { // not this run's attempt to decide
			rctx, cancel := a.rpc(ctx)
			_, werr := writeAbort(rctx, a.cli, k, att, err.Error())
			cancel()
			if werr != nil {
				return "", werr
			}
		}
		a.o.Log.Warn().Err(err).Msg("this run's vote was not counted: rolling it back")
		if errors.Is(err, errNotMine) {
			a.notMine[run] = true
		}
		return decisionAbort, nil
	default:
		return "", err
	}
	d, err := wt.decision(ctx, t)
	if err != nil {
		return "", err
	}
	w, _ := splitValue(d)
	return w, nil
}

// voter names who casts a vote: the run, by the hash of its first journal
// record (unique to the run, and the same after a restart of the agent,
// whatever the host's name or the database's mount path). Abort votes,
// cast for no run, pass "".
func voter(first string) string {
	if first == "" {
		return "no run"
	}
	return "run " + first
}

// putOutcome records the node's outcome of attempt att, and returns the
// node's vote as etcd holds it then (ok: the Txn succeeded). It is a
// report, not part of the decision: a failure is logged.
func (a *agent) putOutcome(ctx context.Context, k keys, att int64, outcome string) (vote string, ok bool) {
	rctx, cancel := a.rpc(ctx)
	defer cancel()
	resp, err := a.cli.Txn(rctx).Then(clientv3.OpPut(k.outcome(att, a.o.Node), outcome), clientv3.OpGet(k.vote(att, a.o.Node))).Commit()
	if err != nil {
		a.o.Log.Warn().Err(err).Str("key", k.outcome(att, a.o.Node)).Msg("outcome not recorded in etcd")
		return "", false
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		vote = string(kvs[0].Value)
	}
	return vote, true
}

// voteAbort records the node's abort vote with reason and decides abort
// (fenced: a stale or decided attempt keeps what it has) in the publish
// of attempt att whose plan key was created at rev. If the restore was
// published again since (errRepublished), it writes nothing: that attempt
// is not this node's run's to decide, nor to report on.
func (a *agent) voteAbort(ctx context.Context, k keys, att, rev int64, reason string) error {
	rctx, cancel := a.rpc(ctx)
	defer cancel()
	_, err := vote(rctx, a.cli, k, att, rev, a.o.Node, abortValue(reason), voter(""))
	if errors.Is(err, errRepublished) {
		return err
	}
	if err != nil && !errors.Is(err, errDecided) && !errors.Is(err, ErrStale) {
		a.o.Log.Warn().Err(err).Msg("abort vote not recorded in etcd")
	}
	if _, err := writeAbort(rctx, a.cli, k, att, fmt.Sprintf("node %s voted abort: %s", a.o.Node, reason)); err != nil {
		a.o.Log.Warn().Err(err).Msg("abort decision not recorded in etcd")
	}
	return nil
}

// refuse returns why the node will not restore the plan's entry ("" if
// it will): a db that is not the node's own, a source outside every
// allowed prefix.
func (a *agent) refuse(e PlanNode) string {
	if e.DB != "" && !samePath(e.DB, a.o.DB) {
		return fmt.Sprintf("the plan's db %s is not this node's database %s", e.DB, a.o.DB)
	}
	if len(a.o.AllowFrom) == 0 {
		return ""
	}
	for _, p := range a.o.AllowFrom {
		if allowed(e.From, p) {
			return ""
		}
	}
	return fmt.Sprintf("source %s is outside every allowed prefix (%s)", e.From, strings.Join(a.o.AllowFrom, ", "))
}

// samePath reports whether two paths name the same directory once made
// absolute, cleaned and their symbolic links resolved (where they exist).
func samePath(x, y string) bool {
	return resolve(x) == resolve(y)
}

func resolve(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	// A database not made yet: resolve its parent.
	if r, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(r, filepath.Base(abs))
	}
	return abs
}

// allowed reports whether source is under prefix: a URL by its text
// (prefix ending in /, or the whole URL) with the same query as the
// prefix's, exactly; a path after cleaning, on a path-element boundary.
func allowed(source, prefix string) bool {
	if strings.Contains(prefix, "://") || strings.Contains(source, "://") {
		// The query (endpoint=, region=, profile=, ...) says which server
		// and credentials: the source's must be the prefix's, exactly,
		// or a plan could send the fetch elsewhere.
		source, sq, _ := strings.Cut(source, "?")
		prefix, pq, _ := strings.Cut(prefix, "?")
		if sq != pq || strings.Contains(source, "#") {
			return false
		}
		if u, err := url.PathUnescape(source); err != nil || strings.Contains(u, "/../") || strings.HasSuffix(u, "/..") {
			return false
		}
		return source == prefix || strings.HasPrefix(source, strings.TrimSuffix(prefix, "/")+"/")
	}
	s, p := resolve(source), resolve(prefix)
	return s == p || strings.HasPrefix(s, strings.TrimSuffix(p, "/")+"/")
}

// handle performs the node's part of attempt att of restore name. It
// returns nil, nil when the node is not in the plan or already recorded
// its outcome there.
func (a *agent) handle(ctx context.Context, name string, att int64) (*NodeReport, error) {
	k := keysOf(a.prefix, name)
	rctx, cancel := a.rpc(ctx)
	rep, rec, err := readReport(rctx, a.cli, k, name, att)
	cancel()
	if err != nil {
		return nil, undecided(err)
	}
	if rec.Plan.Name != name {
		a.o.Log.Warn().Str("restore", name).Str("plan", rec.Plan.Name).Msg("the published plan names another restore: not a plan kvrflow published here; skipped")
		return nil, nil
	}
	tag := Tag(name, att, rec.ID)
	entry, ok := rec.Plan.Node(a.o.Node)
	if !ok {
		return nil, nil
	}
	var me NodeReport
	for _, n := range rep.Nodes {
		if n.ID == a.o.Node {
			me = n
		}
	}
	if a.twin[tag] {
		delete(a.twin, tag)
		return &NodeReport{ID: a.o.Node, Outcome: outcomeRolledBack, Reason: "the node's vote was another agent's"},
			fmt.Errorf("%w: %s attempt %d: node %s's vote was another agent's; this database kept", ErrAborted, name, att, a.o.Node)
	}
	if me.Outcome != "" {
		if a.resolved[tag] {
			delete(a.resolved, tag)
			return &me, outcomeErr(name, att, a.o.Node, me.Outcome)
		}
		return nil, nil
	}
	log := a.o.Log.With().Str("restore", name).Int64("attempt", att).Str("node", a.o.Node).Logger()
	done := func(outcome string, err error) (*NodeReport, error) {
		if err := a.hit(PointBeforeOutcome); err != nil {
			return nil, err
		}
		if v, ok := a.putOutcome(ctx, k, att, outcome); ok {
			me.Vote, me.Reason = splitValue(v)
		}
		me.ID, me.Outcome = a.o.Node, outcome
		if err == nil {
			err = outcomeErr(name, att, a.o.Node, outcome)
		}
		log.Info().Str("outcome", outcome).Msg("node done")
		return &me, err
	}
	// abort votes abort and reports the node rolled back; in a restore
	// published again since it was read, neither (see voteAbort).
	abort := func(reason string) (*NodeReport, error) {
		if err := a.voteAbort(ctx, k, att, rec.rev, reason); err != nil {
			return &NodeReport{ID: a.o.Node, Outcome: outcomeRolledBack, Reason: oneLine(err)}, fmt.Errorf("%w: %w", ErrAborted, err)
		}
		return done(outcomeRolledBack, nil)
	}

	// A run of this attempt already (this agent restarted): its outcome
	// stands; a rolled-back one votes abort.
	local, err := kvrflow.ClusterRun(a.opts, tag)
	if err != nil {
		return nil, err
	}
	if local != nil {
		if local.InFlight() {
			if err := a.recoverLocal(ctx); err != nil {
				return nil, err
			}
			if local, err = kvrflow.ClusterRun(a.opts, tag); err != nil {
				return nil, err
			}
		}
		if local.InFlight() {
			return nil, undecided(fmt.Errorf("run %d of %s still in flight", local.ID, tag))
		}
		if local.Outcome == outcomeRolledBack {
			return abort("this node's run was rolled back (interrupted or failed before it voted)")
		}
		return done(local.Outcome, nil)
	}
	if rep.Decision != "" {
		if rep.Decision == decisionCommit {
			return nil, fmt.Errorf("%s attempt %d decided commit but node %s has no run of it in its journal: %w", name, att, a.o.Node, journal.ErrCorrupt)
		}
		return done(outcomeRolledBack, nil)
	}
	if reason := a.refuse(entry); reason != "" {
		log.Warn().Str("reason", reason).Msg("voting abort")
		return abort(reason)
	}
	// The decision's watch is opened while the restore runs, off the
	// path from the last vote to the decision and without delaying the
	// restore's start; the vote's own read follows it (see wait). Not
	// opened (etcd busy): the wait opens it after the vote and reads
	// again.
	wt := &wait{cli: a.cli, k: k, a: att, plan: &rec.Plan, deadline: time.Now().Add(rec.PrepareTimeout), retry: true, watched: k.decision(att), grace: lastVoterGrace}
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		if _, err := wt.open(ctx); err != nil {
			log.Debug().Err(err).Msg("decision watch not opened yet")
		}
	}()
	defer func() { <-opened; wt.close() }()
	opts := a.opts
	opts.Source, opts.Prepare = entry.From, tag
	if entry.Mode != "" {
		opts.Mode = modeOf(entry.Mode)
	}
	p, err := kvrflow.Prepare(ctx, opts)
	if err != nil {
		if errors.Is(err, fsm.ErrInFlight) {
			// Neither prepared nor rolled back: no vote; the next start
			// recovers it, and the timeout decides abort meanwhile.
			return nil, undecided(err)
		}
		log.Warn().Err(err).Msg("restore failed; voting abort")
		return abort(oneLine(err))
	}
	defer p.Close()
	log.Info().Uint64("run", p.RunID()).Msg("prepared; voting")
	if err := a.hit(PointBeforeVote); err != nil {
		return nil, undecided(err)
	}
	<-opened
	rctx, cancel = a.rpc(ctx)
	t, err := vote(rctx, a.cli, k, att, rec.rev, a.o.Node, votePrepared, voter(p.Result.Run.FirstHash))
	cancel()
	switch {
	case err == nil, errors.Is(err, errDecided):
	case errors.Is(err, ErrStale):
		// This run's vote was not counted: abort if nothing is decided
		// (unless the restore was published again: that attempt is not
		// this run's to decide), and roll this run back whatever is.
		verr := err
		if !errors.Is(verr, errRepublished) {
			rctx, cancel := a.rpc(ctx)
			_, err = writeAbort(rctx, a.cli, k, att, verr.Error())
			cancel()
			if err != nil {
				return nil, undecided(err)
			}
		}
		log.Warn().Err(verr).Msg("this run's vote was not counted: rolling it back")
		if _, err := p.Decide(ctx, false); err != nil && !kvrflow.IsRolledBack(err) {
			return nil, undecided(err)
		}
		if errors.Is(verr, errNotMine) || errors.Is(verr, errRepublished) {
			// The node's outcome is the other agent's to report, or
			// the new publish's to come.
			return &NodeReport{ID: a.o.Node, Outcome: outcomeRolledBack, Reason: oneLine(verr)}, fmt.Errorf("%w: %w", ErrAborted, verr)
		}
		return done(outcomeRolledBack, nil)
	default:
		return nil, undecided(err) // the run stays prepared
	}
	if err := a.hit(PointAfterVote); err != nil {
		return nil, undecided(err)
	}
	d, err := wt.decision(ctx, t)
	if err != nil {
		return nil, undecided(err)
	}
	w, _ := splitValue(d)
	log.Info().Str("decision", d).Msg("decided")
	if err := a.hit(PointDecided); err != nil {
		return nil, undecided(err)
	}
	if _, err := p.Decide(ctx, w == decisionCommit); err != nil && !kvrflow.IsRolledBack(err) {
		return nil, undecided(err)
	}
	if w == decisionCommit {
		return done(outcomeCommitted, nil)
	}
	return done(outcomeRolledBack, nil)
}

// outcomeErr is the error Agent returns for a node's outcome: nil for
// committed, ErrAborted for rolled back.
func outcomeErr(name string, att int64, node, outcome string) error {
	if outcome == outcomeCommitted {
		return nil
	}
	return fmt.Errorf("%w: %s attempt %d: node %s kept its database", ErrAborted, name, att, node)
}

// oneLine is err's message's first line.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
