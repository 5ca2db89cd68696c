package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kvrflow/kvrflow/cluster"
)

var clusterRestoreCommand = &command{
	name:    "cluster restore",
	args:    "--etcd ENDPOINTS --plan PLAN.json [flags]",
	summary: "restore every node of a cluster, all new or all old, decided in etcd",
	about: `Publish the cluster restore PLAN.json in etcd as a new attempt and wait for its
outcome. On each node 'kvrflow cluster agent' restores its database up to the
prepared state (the new database staged, verified and durable, the old one
still in place) and votes in etcd. When every node has voted prepared, commit
is written to etcd, once, and every node swaps in its new database; if any
node votes abort (bad source, no space, a db or source its agent refuses), or
--prepare-timeout passes first, abort is written and every node keeps its old
database. The decision is etcd's, not this process's: killed, it can be run
again (with the same plan it follows the attempt it published, restoring
nothing twice; --new-attempt starts another), or 'kvrflow cluster status'
asked.

PLAN.json: {"name": "NAME", "nodes": [{"id": "n1", "from": "/backups/n1",
"db": "/var/lib/kvrocks/db", "mode": "auto"}, ...]}; db is optional (checked
against the agent's --db, never taken from etcd), mode is copy, link or auto.

Exit codes: 0 every node committed; 1 aborted, every node kept its old
database; 2 a bad plan, bad flags, etcd refused the credentials, or the next
attempt's keys already exist (etcd edited by hand) (nothing published); 4 a
node reports an outcome that contradicts the decision (mixed: see 'kvrflow
cluster status'); 5 no outcome in time (the state is in etcd: run again, or
ask 'kvrflow cluster status').`,
	example: "kvrflow cluster restore --etcd https://10.0.0.5:2379 --etcd-cacert ca.pem --etcd-user kvrflow --etcd-password-file /etc/kvrflow/etcd-password --plan plan.json",
	new:     func() runner { return &clusterRestoreCmd{} },
}

type clusterRestoreCmd struct {
	common
	etcd           etcdFlags
	plan, fault    string
	prepareTimeout time.Duration
	newAttempt     bool
}

func (c *clusterRestoreCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	c.etcd.define(fs)
	fs.StringVar(&c.plan, "plan", "", "the plan `FILE` (JSON: name, nodes with id, from, optional db and mode) (required)")
	fs.DurationVar(&c.prepareTimeout, "prepare-timeout", cluster.DefaultPrepareTimeout, "abort if not every node has voted prepared within `D`; any participant may then write abort")
	fs.BoolVar(&c.newAttempt, "new-attempt", false, "publish a new attempt even when the current attempt of NAME has the same plan (by default a second run follows that attempt and reports its outcome, restoring nothing twice)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
}

func (c *clusterRestoreCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--plan", c.plan); err != nil {
		return nil, err
	}
	if c.prepareTimeout <= 0 {
		return nil, usagef("--prepare-timeout must be more than 0")
	}
	plan, err := readPlan(c.plan)
	if err != nil {
		return nil, err
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
	cli, err := cluster.Connect(ctx, cfg)
	if err != nil {
		return nil, etcdError(err, cfg)
	}
	defer cli.Close()
	rep, err := cluster.Coordinate(ctx, cli, cfg.Prefix, plan, cluster.CoordinateOptions{PrepareTimeout: c.prepareTimeout,
		NewAttempt: c.newAttempt, Faults: faults, Log: *log})
	err = etcdError(err, cfg)
	if err != nil && errors.Is(err, cluster.ErrUndecided) {
		err = fmt.Errorf("%w; the state is in etcd: run again, or 'kvrflow cluster status --etcd %s %s'", err, c.etcd.endpoints, plan.Name)
	}
	if rep == nil {
		return nil, err
	}
	return &reportDoc{Report: rep}, err
}

// readPlan reads and checks PLAN.json; any problem is bad input naming
// the file (cluster.ErrBadPlan, exit 2).
func readPlan(path string) (*cluster.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--plan %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	plan, err := cluster.ParsePlan(f)
	if err != nil {
		return nil, fmt.Errorf("--plan %s: %w", path, err)
	}
	return plan, nil
}
