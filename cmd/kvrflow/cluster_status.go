package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

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
	if name == "" {
		if name, err = latestRestore(ctx, cli, cfg.Prefix); err != nil {
			return nil, etcdError(err, cfg)
		}
	}
	rep, err := cluster.Status(ctx, cli, cfg.Prefix, name)
	if err != nil {
		return nil, etcdError(err, cfg)
	}
	return &reportDoc{Report: rep}, nil
}

// latestRestore returns the name of the restore whose current attempt
// was published last: the newest key under PREFIX/attempts/ (package
// cluster's documented layout: PREFIX/attempts/NAME holds NAME's current
// attempt). No restore at all is cluster.ErrNotFound.
func latestRestore(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cluster.RequestTimeout)
	defer cancel()
	dir := cluster.NormPrefix(prefix) + "attempts/"
	resp, err := cli.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return "", fmt.Errorf("etcd get %s: %w", dir, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("%w: none under %s", cluster.ErrNotFound, cluster.NormPrefix(prefix))
	}
	return strings.TrimPrefix(string(resp.Kvs[0].Key), dir), nil
}
