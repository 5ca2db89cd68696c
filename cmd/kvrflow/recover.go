package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/fsm"
)

var recoverCommand = &command{
	name:    "recover",
	args:    "--db DIR [flags]",
	summary: "finish or roll back whatever a killed kvrflow left in flight",
	about: `Finish or roll back every run the journal holds in flight for DIR: a run
killed before its commit point is rolled back (DIR keeps the old database),
one killed after it is finished (DIR keeps the new one). With nothing in
flight, or no journal at all, it does nothing and succeeds (a DIR whose
parent does not exist is a usage error: exit 2). Run it, or start
a service that calls kvrflow.Recover, before opening DIR after a crash;
kvrflow restore does it first too.

A cluster node's run found prepared (kvrflow cluster) is decided by etcd:
kvrflow cluster agent finishes it. Plain recover leaves it prepared and
exits 5. When etcd itself is lost, the operator decides for every node of
the cluster restore (the same decision on every node; commit only if every
node is prepared for the same attempt) and applies it with --decision.
With --etcd (and its other flags), --decision is checked against etcd first:
a decision that differs from etcd's is refused (exit 2, nothing done), and
abort with no decision yet is first written to etcd (so no other node can
commit). Without --etcd it is applied as given, with a warning naming each
cluster restore it overrides.`,
	example: "kvrflow recover --db /var/lib/app/db",
	new:     func() runner { return &recoverCmd{} },
}

type recoverCmd struct {
	common
	db, fault, decision string
	etcd                etcdFlags
}

func (c *recoverCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` (required)")
	fs.StringVar(&c.decision, "decision", "", "`DECISION` for a cluster node's run left prepared: commit or abort (the operator's when etcd is lost; the same on every node)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
	c.etcd.define(fs)
}

// recoverDoc is recover's --json document: the runs recovered, each with
// its final record and the decision taken ("resume" or "roll back"); an
// empty list means there was nothing to do.
type recoverDoc struct {
	DB        string              `json:"db"`
	Recovered []kvrflow.Recovered `json:"recovered"`
	exitReport
}

func (d *recoverDoc) text(w io.Writer) {
	if len(d.Recovered) == 0 && d.Error == "" {
		if _, err := os.Stat(d.DB + ".kvrflow"); err != nil {
			fmt.Fprintf(w, "no kvrflow journal for %s (%s.kvrflow does not exist): nothing to recover\n", d.DB, d.DB)
			return
		}
		fmt.Fprintf(w, "nothing to recover for %s\n", d.DB)
		return
	}
	printRecovered(w, d.Recovered)
}

// printRecovered prints one line per recovered run: its id, the decision
// and how it ended.
func printRecovered(w io.Writer, recovered []kvrflow.Recovered) {
	for _, r := range recovered {
		fmt.Fprintf(w, "recovered run %d (%s of %s): interrupted in %s, %s, outcome %s\n",
			r.Run.ID, r.Run.Kind, orDash(r.Run.Source), r.FromState, r.Decision, orDash(r.Run.Outcome))
	}
}

func (c *recoverCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db); err != nil {
		return nil, err
	}
	if c.decision != "" && c.decision != "commit" && c.decision != "abort" {
		return nil, usagef("--decision %q: want commit or abort", c.decision)
	}
	faults, log, report, err := c.faultsAndLogger(o, c.fault)
	if err != nil {
		return nil, err
	}
	defer report()
	opts := kvrflow.Options{DB: c.db, Journal: c.journal, Faults: faults, Log: log}
	if c.decision != "" {
		if err := c.checkDecision(ctx, o, opts); err != nil {
			return nil, err
		}
		opts.Decider = kvrflow.Decision(c.decision == "commit")
	}
	done, err := kvrflow.Recover(ctx, opts)
	switch {
	case errors.Is(err, fsm.ErrUndecided):
		err = fmt.Errorf("%w; a cluster restore's run is prepared: 'kvrflow cluster agent --once --db %s ...' finishes it as etcd decided; "+
			"if etcd's decision is lost, 'kvrflow recover --decision commit|abort --db %s', the same on every node", err, c.db, c.db)
	case err != nil && exitCode(err) == exitInFlight:
		err = fmt.Errorf("%w; the run is still in flight: 'kvrflow recover --db %s' tries again", err, c.db)
	}
	if done == nil {
		done = []kvrflow.Recovered{}
	}
	return &recoverDoc{DB: absOr(c.db), Recovered: done}, err
}

// checkDecision checks the operator's --decision for every cluster run
// prepared on the node: against etcd's decision with --etcd (a different
// one is refused; abort with none yet is written first), else with a
// warning on stderr for each cluster restore it overrides.
func (c *recoverCmd) checkDecision(ctx context.Context, o *stdio, opts kvrflow.Options) error {
	runs, err := kvrflow.PreparedRuns(opts)
	if err != nil || len(runs) == 0 {
		return err
	}
	if c.etcd.endpoints == "" {
		for _, r := range runs {
			fmt.Fprintf(o.stderr, "WARNING: run %d of cluster restore %s: applying the operator's decision %s without asking etcd (no --etcd); "+
				"every node of that restore must get the same decision, or the cluster ends mixed\n", r.ID, r.Tag, c.decision)
		}
		return nil
	}
	cfg, err := c.etcd.config(o)
	if err != nil {
		return err
	}
	cli, err := cluster.Connect(ctx, cfg)
	if err != nil {
		return etcdError(err, cfg)
	}
	defer cli.Close()
	for _, r := range runs {
		d, err := cluster.DecisionOf(ctx, cli, cfg.Prefix, r.Tag, c.decision == "abort")
		if err != nil {
			return etcdError(fmt.Errorf("run %d of cluster restore %s: %w; nothing done", r.ID, r.Tag, err), cfg)
		}
		switch d {
		case c.decision:
		case "":
			return usagef("run %d of cluster restore %s: etcd (%s) has not decided it: --decision commit would split the cluster if any node votes abort; "+
				"let the agents decide ('kvrflow cluster agent --once'), or use --decision abort; nothing done", r.ID, r.Tag, cfg.Endpoints[0])
		default:
			return usagef("run %d of cluster restore %s: etcd (%s) decided %s: --decision %s would split the cluster; nothing done", r.ID, r.Tag, cfg.Endpoints[0], d, c.decision)
		}
	}
	return nil
}
