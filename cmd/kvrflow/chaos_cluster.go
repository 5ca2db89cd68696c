package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kvrflow/kvrflow/internal/clusterchaos"
)

// clusterChaosDoc is kvrflow chaos --cluster's --json document: the run
// (chaosRun) and the harness's summary (see clusterchaos.Summary).
type clusterChaosDoc struct {
	chaosRun
	clusterchaos.Summary
	exitReport
}

func (d *clusterChaosDoc) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, it := range d.Log {
		kill := it.Kill
		if !it.Killed {
			kill += " (ended before the kill)"
		}
		fmt.Fprintf(tw, "%d\t%s\tdecision %s\t%s\n", it.N, kill, orDash(it.Decision), it.Result)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "seed\t%d\n", d.Seed)
	fmt.Fprintf(tw, "nodes\t%d\n", d.Nodes)
	fmt.Fprintf(tw, "iterations\t%d\n", d.Iterations)
	fmt.Fprintf(tw, "killed while running\t%d\n", d.Killed)
	fmt.Fprintf(tw, "committed / aborted in etcd\t%d / %d\n", d.Committed, d.Aborted)
	fmt.Fprintf(tw, "all-old\t%d\n", d.AllOld)
	fmt.Fprintf(tw, "all-new\t%d\n", d.AllNew)
	fmt.Fprintf(tw, "mixed\t%d\n", d.Mixed)
	fmt.Fprintf(tw, "invariant failures\t%d\n", d.Failures)
	chaosTail(w, tw, d.Kept, d.LogFile, d.FailureDetails)
}

// runCluster is kvrflow chaos --cluster N: the cluster restore's
// random-kill self-test against the etcd the flags name.
func (c *chaosCmd) runCluster(ctx context.Context, o *stdio) (document, error) {
	if c.nodes < 1 {
		return nil, usagef("--cluster wants a number of nodes, at least 1")
	}
	if c.from != "" {
		return nil, usagef("--from does not apply with --cluster: every node gets a sample backup of its own")
	}
	if c.iterations < 1 {
		return nil, usagef("--iterations must be at least 1")
	}
	if _, err := c.etcd.config(o); err != nil {
		return nil, err
	}
	s, err := c.start(o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	log, self, scratch, lf := s.log, s.self, s.scratch, s.logFile
	doc := &clusterChaosDoc{chaosRun: s.run(c.seed, c.keep)}
	doc.Nodes = c.nodes
	log.Info().Int("nodes", c.nodes).Str("scratch", scratch).Msg("cluster chaos: making the nodes and running a clean cluster restore")
	h, err := clusterchaos.New(ctx, clusterchaos.Config{Self: self, Scratch: scratch, Nodes: c.nodes, EtcdArgs: c.etcd.args(),
		Seed: c.seed, Output: lf})
	if err != nil {
		return doc, err
	}
	for i := 1; i <= c.iterations; i++ {
		if err := ctx.Err(); err != nil {
			return doc, err
		}
		it, err := h.Iteration(ctx, i)
		if err != nil {
			return doc, err
		}
		log.Debug().Int("n", i).Str("kill", it.Kill).Str("decision", it.Decision).Str("result", it.Result).Msg("iteration")
		doc.Add(it)
	}
	if doc.Failures > 0 {
		return doc, fmt.Errorf("%w: %d of %d iterations (seed %d)", errChaos, doc.Failures, doc.Iterations, c.seed)
	}
	return doc, nil
}

// args returns the etcd flags as given, for a child kvrflow (the
// password travels in the environment or its file, never on the command
// line).
func (e *etcdFlags) args() []string {
	a := []string{"--etcd", e.endpoints, "--etcd-prefix", e.prefix, "--etcd-dial-timeout", e.dialTimeout.String()}
	for _, f := range []struct{ name, v string }{{"--etcd-cacert", e.cacert}, {"--etcd-cert", e.cert}, {"--etcd-key", e.key},
		{"--etcd-user", e.user}, {"--etcd-password-file", e.passwordFile}} {
		if f.v != "" {
			a = append(a, f.name, f.v)
		}
	}
	return a
}
