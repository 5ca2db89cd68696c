package steps

import (
	"context"
	"fmt"
	"sync"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// Workers is how many files Precheck checksums and Write copies at once:
// enough to keep the disk busy while another file is checksummed or
// fsynced (BenchmarkCopyFiles: 400 MB/s with one, 675 MB/s with 2 to 4).
var Workers = 4

// buffers holds eachFile's buffers between calls: Precheck's serve
// Write, and a long-running process (an agent) reuses them from one
// restore to the next rather than allocate, zero and collect 1 MiB each
// time.
var buffers = sync.Pool{New: func() any { b := make([]byte, fsx.BufferSize); return &b }}

// eachFile calls fn for i in [0, n) on Workers goroutines, each with its
// own buffer. The first error fn returns cancels the rest (files not
// started are skipped) and is returned, also when ctx was cancelled first
// (fn's error then says how far it got, "interrupted after N of M bytes",
// where ctx's own would only say "context canceled"); a panic in fn is
// re-raised on the caller's goroutine once every worker has stopped.
func eachFile(ctx context.Context, n int, fn func(ctx context.Context, i int, buf []byte) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	var panicked any
	var first error
	var once, firstOnce sync.Once
	for w := 0; w < min(Workers, n); w++ {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { panicked = r })
					cancel(fmt.Errorf("worker panicked: %v", r))
					for range next { // let the feeder finish
					}
				}
			}()
			bp := buffers.Get().(*[]byte)
			defer buffers.Put(bp)
			buf := *bp
			for i := range next {
				if err := fn(ctx, i, buf); err != nil {
					firstOnce.Do(func() { first = err })
					cancel(err)
				}
			}
		})
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
