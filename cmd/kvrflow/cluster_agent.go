package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/steps"
)

var clusterAgentCommand = &command{
	name:    "cluster agent",
	args:    "--etcd ENDPOINTS --node ID --db DIR [flags]",
	summary: "on each node: do this node's part of the cluster restores published in etcd",
	about: `Run on each node of a cluster: watch etcd for cluster restores (published by
'kvrflow cluster restore') that name this node's ID, and for each restore DIR
from the plan's source for this node up to the prepared state (new database
staged, verified, durable; the old one still in place, its LOCK held), vote in
etcd, wait for the decision, then commit (DIR holds the new database) or roll
back (DIR keeps the old one). At start, a run left prepared by a killed agent
is finished as etcd's decision says; with etcd unreachable it stays prepared
and the agent exits 5 without guessing.

DIR comes from this command line, never from etcd: a plan entry whose db
differs from --db, or whose source is outside every --allow-from prefix (when
any is given), makes this node vote abort, with the reason in its vote.

With --once it handles the current restore (or waits for the next) and exits
with this node's outcome: 0 committed, 1 aborted (DIR as before), 5 undecided
(the run stays prepared; run the agent again). Without --once it serves until
SIGINT or SIGTERM.`,
	example: "kvrflow cluster agent --etcd https://10.0.0.5:2379 --etcd-cacert ca.pem --node n1 --db /var/lib/kvrocks/db --allow-from /backups/",
	new:     func() runner { return &clusterAgentCmd{} },
}

type clusterAgentCmd struct {
	common
	etcd             etcdFlags
	node, db, mode   string
	engine, verify   string
	fault            string
	allowFrom        stringList
	once, noExchange bool
}

func (c *clusterAgentCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	c.etcd.define(fs)
	fs.StringVar(&c.node, "node", "", "this node's `ID` in the plans (required)")
	fs.StringVar(&c.db, "db", "", "this node's database directory `DIR`; its parent must exist (required)")
	fs.Var(&c.allowFrom, "allow-from", "accept only sources under `PREFIX`: a directory, or a URL prefix such as s3://bucket/backups/ (repeatable; default: any source)")
	fs.BoolVar(&c.once, "once", false, "handle the current cluster restore (or wait for the next), then exit with this node's outcome")
	fs.StringVar(&c.mode, "mode", "auto", "default `MODE` in which files reach DIR when the plan gives none: copy, link or auto")
	fs.StringVar(&c.engine, "engine", steps.EngineAuto, "the sources' `ENGINE`: pebble, rocksdb or auto")
	fs.StringVar(&c.verify, "verify", steps.VerifyChecksum, "how much is checked before voting prepared, `LEVEL`: checksum, full or size (see kvrflow restore --help)")
	fs.BoolVar(&c.noExchange, "no-exchange", false, "commit with two renames instead of one renameat2(RENAME_EXCHANGE)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
}

// agentDoc is cluster agent's --json document (with --once): this node,
// its database, and its part of the restore (cluster.NodeReport: vote,
// reason, local outcome).
type agentDoc struct {
	Node string `json:"node"`
	DB   string `json:"db"`
	*cluster.NodeReport
	exitReport
}

func (d *agentDoc) text(w io.Writer) {
	if d.NodeReport == nil {
		return
	}
	fmt.Fprintf(w, "node %s (%s): voted %s, outcome %s", d.Node, d.DB, orDash(d.Vote), orDash(d.Outcome))
	if d.Reason != "" {
		fmt.Fprintf(w, " (%s)", d.Reason)
	}
	fmt.Fprintln(w)
}

func (c *clusterAgentCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--node", c.node, "--db", c.db); err != nil {
		return nil, err
	}
	db, err := absPath(c.db)
	if err != nil {
		return nil, err
	}
	for _, p := range c.allowFrom {
		if p == "" {
			return nil, usagef("--allow-from wants a non-empty prefix")
		}
	}
	faults, log, report, err := c.faultsAndLogger(o, c.fault)
	if err != nil {
		return nil, err
	}
	defer report()
	cfg, err := c.etcd.config(o)
	if err != nil {
		return nil, err
	}
	tuneAgentGC(o.getenv)
	cli, err := cluster.Connect(ctx, cfg)
	if err != nil {
		return nil, c.undecidedHint(etcdError(err, cfg), db)
	}
	defer cli.Close()
	opts := cluster.AgentOptions{
		Node: c.node, DB: db, AllowFrom: c.allowFrom, Once: c.once, Journal: c.journal, Log: *log,
		Restore: kvrflow.Options{DB: db, Journal: c.journal, Mode: steps.Mode(c.mode), Engine: c.engine, Verify: c.verify,
			NoExchange: c.noExchange, Faults: faults, Log: log},
	}
	rep, err := cluster.Agent(ctx, cli, cfg.Prefix, opts)
	err = c.undecidedHint(etcdError(err, cfg), db)
	if !c.once && errors.Is(err, context.Canceled) && exitCode(err) != exitInFlight {
		err = nil // SIGINT or SIGTERM between restores: the service stops
	}
	if rep == nil && err != nil {
		return nil, err
	}
	return &agentDoc{Node: c.node, DB: db, NodeReport: rep}, err
}

// agentGCPercent is the agent's garbage-collection target (GOGC) unless
// the environment sets GOGC. An agent's live heap is mostly its etcd and
// gRPC client, held for as long as it serves; at Go's default of 100,
// each restore it runs (Pebble's open for verification, the journal,
// the copies) collects a few times, and each collection marks that heap
// again: on 10 agents sharing 2 cores, about 60 ms of a cluster
// restore's wall time (bench/cluster). The soft memory limit
// (remoteMemoryLimit, unless GOMEMLIMIT is set) still bounds the heap.
const agentGCPercent = 400

// tuneAgentGC sets agentGCPercent and the soft memory limit, each unless
// the environment sets its own.
func tuneAgentGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
	limitMemoryForRemote(getenv)
}

// undecidedHint says, on an undecided error, what the node's database
// holds (a prepared run, or nothing changed) and how to go on.
func (c *clusterAgentCmd) undecidedHint(err error, db string) error {
	if err == nil || !errors.Is(err, cluster.ErrUndecided) {
		return err
	}
	const again = "run 'kvrflow cluster agent --once' again once etcd answers"
	runs, perr := kvrflow.PreparedRuns(kvrflow.Options{DB: db, Journal: c.journal})
	switch {
	case perr == nil && len(runs) == 0:
		return fmt.Errorf("%w; no run of this node is prepared (its database is as it was): %s", err, again)
	case perr == nil:
		return fmt.Errorf("%w; the run stays prepared (the old database live): %s", err, again)
	}
	return fmt.Errorf("%w; %s", err, again)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends s as given: package cluster compares paths cleaned and on
// element boundaries (/backups admits /backups/x, not /backups-evil),
// and URLs (s3://bucket/prefix/) by their text.
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
