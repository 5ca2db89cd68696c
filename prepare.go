package kvrflow

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// Prepared is a cluster node's restore run stopped in the prepared state
// (see Options.Prepare), its journal open and every lock held: kvrflow's
// lock on DB, DB's LOCK and the staged database's. Decide applies the
// cluster's decision; Close releases the locks and leaves the run
// prepared in the journal, for Resolve or a Recover with a Decider.
type Prepared struct {
	// Result is the run as it stands (Result.Run.State is "prepared"
	// until Decide).
	Result *Result
	s      *session
	run    *fsm.Run
	env    *steps.Env
}

// Prepare runs a restore as Restore does, for the cluster restore
// opts.Prepare (required), up to the prepared state, and returns it with
// its locks held. The new database is then staged, verified and durable,
// and the journal says so. On error nothing is held: the run was rolled
// back (errors.Is(err, fsm.ErrRolledBack), DB as it was), refused as
// Restore's errors say, or left in flight.
func Prepare(ctx context.Context, opts Options) (*Prepared, error) {
	if opts.Prepare == "" {
		return nil, fmt.Errorf("%w: Prepare needs Options.Prepare, the cluster restore's name", steps.ErrBadOption)
	}
	p, err := restore(ctx, opts)
	if err != nil || p == nil || p.run == nil {
		if p != nil {
			p.Close()
		}
		if err == nil {
			err = fmt.Errorf("%w: run ended in %s without stopping in prepared", fsm.ErrIllegal, p.Result.Run.State)
		}
		return nil, err
	}
	return p, nil
}

// RunID returns the prepared run's id in its journal.
func (p *Prepared) RunID() uint64 { return p.Result.Run.ID }

// Decide applies the cluster's decision to the prepared run: commit
// (true) runs Commit and Finish, DB then holds the new database; abort
// (false) rolls the run back, DB keeps the database it held. It then
// releases the locks (Close). On error the run is in flight and
// recovery finishes it: commit was decided, so a Decider answering as
// the cluster did (Resolve) resumes it. Decide on a closed Prepared
// fails with ErrClosed.
func (p *Prepared) Decide(ctx context.Context, commit bool) (*Result, error) {
	if p.run == nil {
		return p.Result, ErrClosed
	}
	defer p.Close()
	d := fsm.RollBack
	if commit {
		d = fsm.Resume
	}
	s := p.s
	_, runErr := p.run.RecoverWith(ctx, p.env.Steps(), fixedDecider(d))
	res := p.Result
	res.Syncs.Files, res.Syncs.Dirs = s.fs.Syncs()
	res.Syncs.JournalCommits = s.j.Commits()
	var err error
	if res.Run, err = s.j.Run(p.run.ID); err != nil {
		return res, errors.Join(runErr, err)
	}
	res.Summary = summarize(s.j, p.run.ID)
	if runErr == nil && !commit {
		runErr = fmt.Errorf("%w: the cluster decided abort", fsm.ErrRolledBack)
	}
	return res, runErr
}

// Close releases the locks and the journal, leaving the run as it is
// (prepared, before Decide). Safe to call twice.
func (p *Prepared) Close() error {
	var errs []error
	if p.env != nil {
		errs = append(errs, p.env.Close())
		p.env = nil
	}
	p.run = nil
	if p.s != nil {
		errs = append(errs, p.s.close())
		p.s = nil
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by Prepared.Decide after Decide or Close.
var ErrClosed = errors.New("prepared run already decided or closed")

// fixedDecider answers d for every run.
type fixedDecider fsm.Decision

func (f fixedDecider) Decide(context.Context, uint64, string) (fsm.Decision, error) {
	return fsm.Decision(f), nil
}

// Decision returns a Decider that answers commit (true: Resume) or
// abort (false: RollBack) for every prepared run: an operator's explicit
// decision (recover --decision), or an agent's once etcd has decided.
func Decision(commit bool) fsm.Decider {
	if commit {
		return fixedDecider(fsm.Resume)
	}
	return fixedDecider(fsm.RollBack)
}

// PreparedRun is a run found prepared for a cluster restore.
type PreparedRun struct {
	ID  uint64 `json:"id"`
	Tag string `json:"prepare"` // the cluster restore (Options.Prepare)
}

// PreparedRuns lists the cluster nodes' runs in flight for opts.DB (in
// prepared, or in any state a crash left them in), with the cluster
// restore each is part of. It changes nothing.
func PreparedRuns(opts Options) ([]PreparedRun, error) {
	s, err := open(opts, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.j == nil {
		return nil, nil
	}
	runs, err := inFlightFor(s.fs, s.j, s.layout.DB)
	if err != nil {
		return nil, err
	}
	var out []PreparedRun
	for _, r := range runs {
		if r.Kind != steps.KindRestore {
			continue
		}
		tag, err := steps.PreparedTag(s.j, r.ID)
		if err != nil {
			return nil, err
		}
		if tag != "" {
			out = append(out, PreparedRun{ID: r.ID, Tag: tag})
		}
	}
	return out, nil
}

// Resolve applies an explicit decision to every run for opts.DB found
// prepared for a cluster restore (commit: finish it; abort: roll it
// back), and recovers any other run in flight as Recover does. It is the
// operator's override when the decision log is lost (recover --decision):
// the operator must make the same decision on every node.
func Resolve(ctx context.Context, opts Options, commit bool) ([]Recovered, error) {
	opts.Decider = Decision(commit)
	return Recover(ctx, opts)
}

// clusterRunScan is how many of the journal's latest runs ClusterRun
// looks through.
const clusterRunScan = 256

// ClusterRun returns the latest run for opts.DB prepared for the cluster
// restore tag (Options.Prepare), among the journal's latest 256 runs, or
// nil if there is none (or no journal). It changes nothing.
func ClusterRun(opts Options, tag string) (*journal.Run, error) {
	s, err := open(opts, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.j == nil {
		return nil, nil
	}
	runs, err := s.j.Runs(clusterRunScan)
	if err != nil {
		return nil, err
	}
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		if r.Kind != steps.KindRestore || !steps.SameDB(s.fs, r.Target, s.layout.DB) {
			continue
		}
		t, err := steps.PreparedTag(s.j, r.ID)
		if err != nil {
			return nil, err
		}
		if t == tag {
			return &r, nil
		}
	}
	return nil, nil
}
