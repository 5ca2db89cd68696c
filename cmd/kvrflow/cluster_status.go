package main

import (
	"context"
	"flag"

	"github.com/kvrflow/kvrflow/cluster"
)

var clusterStatusCommand = &command{
	name:    "cluster status",
	args:    "--etcd ENDPOINTS [NAME] [flags]",
	summary: "show a cluster restore's decision and each node's vote and outcome",
	about: `Show, from etcd, the cluster restore NAME (default: the latest published):
its attempt, the decision (commit, abort, or none yet), and each node's vote,
the reason of an abort vote, and its local outcome (committed, rolled_back, or
none reported yet). It only reads etcd. A node with no outcome after a
decision finishes when its agent runs again.`,
	example: "kvrflow cluster status --etcd 10.0.0.5:2379 restore-2024-06-01",
	new:     func() runner { return &clusterStatusCmd{} },
}

type clusterStatusCmd struct {
	common
	etcd etcdFlags
}

func (c *clusterStatusCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	c.etcd.define(fs)
}

func (c *clusterStatusCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 1 {
		return nil, usagef("unexpected argument %q", args[1])
	}
	name := ""
	if len(args) == 1 {
		name = args[0]
	}
	cfg, err := c.etcd.config(o)
	if err != nil {
		return nil, err
	}
	cli, err := cluster.Connect(ctx, cfg)
	if err != nil {
		return nil, etcdError(err, cfg)
	}
	defer cli.Close()
	rep, err := cluster.Status(ctx, cli, cfg.Prefix, name)
	if err != nil {
		return nil, etcdError(err, cfg)
	}
	return &reportDoc{Report: rep}, nil
}
