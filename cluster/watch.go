package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A watcher is one etcd watch kept open across the reads it guards.
//
// etcd delivers the events of a watch created at a revision it has
// already passed from a background loop that runs every 100 ms; a watch
// created at its current revision gets each event as it is written. So
// the watch is opened first, from the current revision (its created
// notification says when it is), and the state is read after it: a
// change before the read is in the read, one after it comes as an event,
// and no event waits for that loop. Kept open, the watch stays current
// however many events arrive while the reader reads.
type watcher struct {
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

// openWatch opens a watch on every key under prefix, from etcd's next
// revision on, and returns once etcd has created it. The watch ends with
// ctx (or close). An etcd that has not created it within RequestTimeout
// is an error.
func openWatch(ctx context.Context, cli *clientv3.Client, prefix string) (*watcher, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	// clientv3's Watch blocks until its stream to etcd is up: the timer
	// ends the watch (and so that wait) if etcd has not created it in
	// time.
	var created, late atomic.Bool
	t := time.AfterFunc(RequestTimeout, func() {
		if !created.Load() {
			late.Store(true)
			cancel()
		}
	})
	defer t.Stop()
	ch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	wr, ok := <-ch
	if ok && wr.Created && wr.Err() == nil {
		created.Store(true)
		if !late.Load() {
			return &watcher{ch: ch, cancel: cancel}, nil
		}
	}
	cancel()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case late.Load():
		return nil, fmt.Errorf("etcd watch %s: not created within %v: %w", prefix, RequestTimeout, context.DeadlineExceeded)
	case wr.Err() != nil:
		// As etcd's other calls return it: a refusal (permission
		// denied, ...) matches rpctypes' errors.
		return nil, fmt.Errorf("etcd watch %s: %w", prefix, watchErr(wr.Err()))
	}
	return nil, fmt.Errorf("etcd watch %s: ended before it was created: %w", prefix, context.Cause(wctx))
}

// watchErr is err, the error of a watch etcd refused, as rpctypes' error
// of the same description where there is one. clientv3 passes a refused
// watch's gRPC status as text ("rpc error: code = PermissionDenied desc =
// etcdserver: permission denied"), which rpctypes.Error alone does not
// map: its description is looked up instead.
func watchErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		if e, ok := rpctypes.Error(errors.New(msg[i+len("desc = "):])).(rpctypes.EtcdError); ok {
			return e
		}
	}
	return rpctypes.Error(err)
}

// next waits for the next changes under the watched prefix, until
// deadline (zero: none), and returns them; at the deadline it returns
// none. ok is false when the watch ended (ctx, compaction, no leader):
// the caller reads again and opens another.
func (w *watcher) next(deadline time.Time) (evs []*clientv3.Event, ok bool) {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case wr, open := <-w.ch:
			if !open || wr.Err() != nil {
				return nil, false
			}
			if len(wr.Events) > 0 {
				return wr.Events, true
			}
		case <-expired:
			return nil, true
		}
	}
}

// close ends the watch; a nil watcher is closed already.
func (w *watcher) close() {
	if w != nil {
		w.cancel()
	}
}
