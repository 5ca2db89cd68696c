package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdtest"
)

// BenchmarkClusterRestore measures a cluster restore of N small nodes
// (agents in goroutines, embedded etcd on loopback) against the same N
// restores run independently, at once: the difference is the protocol's
// own cost (publish, votes, decision, outcomes, the prepared stop and
// the journal's one more record).
func BenchmarkClusterRestore(b *testing.B) {
	srv := etcdtest.Start(b)
	cli := srv.Client(b)
	for _, n := range []int{3, 10} {
		nodes := newNodes(b, n)
		b.Run(fmt.Sprintf("nodes=%d/independent", n), func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for _, nd := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: nd.db, Source: nd.backup, Mode: "copy"}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
		})
		b.Run(fmt.Sprintf("nodes=%d/cluster", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				prefix := fmt.Sprintf("/bench%d-%d/", n, i)
				var wg sync.WaitGroup
				for _, nd := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if res := runAgent(context.Background(), cli, prefix, nd, nil); res.err != nil {
							b.Error(res.err)
						}
					}()
				}
				if _, err := cluster.Coordinate(context.Background(), cli, prefix, planOf("bench", nodes), cluster.CoordinateOptions{PrepareTimeout: time.Minute}); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
			}
		})
	}
}
