package remoterestore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// smallParts makes every transfer of the test GETs of 1 KiB ranges, two
// files at a time, and a stall retried after 1 s.
func smallParts(t testing.TB) {
	t.Helper()
	files, get, idle := steps.RemoteFiles, steps.RemoteGetSize, steps.RemoteIdleTimeout
	steps.RemoteFiles, steps.RemoteGetSize, steps.RemoteIdleTimeout = 2, 1<<10, time.Second
	t.Cleanup(func() {
		steps.RemoteFiles, steps.RemoteGetSize, steps.RemoteIdleTimeout = files, get, idle
	})
}

// TestRestore_RemoteNetworkFaults restores through the fault proxy. The
// faults start once Write does (Precheck's listing and manifest read
// pass): transient ones (500, 503 SlowDown, resets, truncated and short
// bodies, a stall) are retried and the restore commits the backup; a
// fault that never ends, or a server that ignores Range, is a rollback
// that is not bad input (exit 1), and a body damaged in transit (one byte flipped) a
// checksum mismatch (exit 2). Whatever the outcome, DB holds the old
// database or the backup's, never another.
func TestRestore_RemoteNetworkFaults(t *testing.T) {
	s := newServer(t)
	smallParts(t)
	tests := []struct {
		name  string
		rules []s3test.Rule
		want  string // "", "rolled back" (retries exhausted, exit 1), "refused" (exit 1) or "checksum" (exit 2)
	}{
		{"500 twice", []s3test.Rule{{Method: "GET", Fault: s3test.Fault500, Times: 2}}, ""},
		{"503 SlowDown twice", []s3test.Rule{{Method: "GET", Fault: s3test.FaultSlowDown, Times: 2}}, ""},
		{"connection reset twice", []s3test.Rule{{Method: "GET", Fault: s3test.FaultReset, Times: 2}}, ""},
		{"truncated bodies", []s3test.Rule{{Method: "GET", Fault: s3test.FaultTruncate, Times: 2}}, ""},
		{"short body, lying length", []s3test.Rule{{Method: "GET", Ranged: true, Fault: s3test.FaultShort, Times: 1}}, ""},
		{"stalled server", []s3test.Rule{{Method: "GET", Fault: s3test.FaultStall, Times: 1}}, ""},
		{"Range ignored", []s3test.Rule{{Method: "GET", Ranged: true, Fault: s3test.FaultNoRange, Times: 1}}, "refused"},
		{"500 for ever", []s3test.Rule{{Method: "GET", Fault: s3test.Fault500, Times: -1}}, "rolled back"},
		{"resets for ever", []s3test.Rule{{Method: "GET", Fault: s3test.FaultReset, Times: -1}}, "rolled back"},
		{"byte flipped in transit", []s3test.Rule{{Method: "GET", Fault: s3test.FaultFlip, Times: 1}}, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := s3test.NewProxy(t, s.gw) // its rules end with the case
			url := s3test.URL(p.URL(), s.bucket, "pebble")
			f := newPebbleFixture(t, s, 300)
			old := f.keys(t)
			before := f.snapshot(t)
			o := kvrflow.Options{DB: f.db, Source: url, Progress: func(done, total int64, unit string) {
				if done == 0 {
					for _, r := range tt.rules {
						p.Add(r)
					}
				}
			}}
			_, err := kvrflow.Restore(context.Background(), o)
			got := f.keys(t)
			switch tt.want {
			case "":
				if err != nil {
					t.Fatalf("restore: %v", err)
				}
				if !testutil.Equal(got, f.new) {
					t.Fatal("committed database differs from the backup")
				}
			case "rolled back":
				if !kvrflow.IsRolledBack(err) || errors.Is(err, steps.ErrBadSource) || !errors.Is(err, remote.ErrRetriesExhausted) {
					t.Fatalf("got %v, want a rollback after the retries (exit 1)", err)
				}
				assertUnchanged(t, before, f.snapshot(t))
			case "refused":
				// A server that answers a ranged GET with the whole
				// object is not retried: the run rolls back.
				if !kvrflow.IsRolledBack(err) || errors.Is(err, steps.ErrBadSource) {
					t.Fatalf("got %v, want a rollback (exit 1)", err)
				}
				assertUnchanged(t, before, f.snapshot(t))
			case "checksum":
				if !kvrflow.IsRolledBack(err) || !errors.Is(err, steps.ErrBadSource) || !strings.Contains(err.Error(), "checksum mismatch") {
					t.Fatalf("got %v, want a checksum mismatch, rolled back (exit 2)", err)
				}
				assertUnchanged(t, before, f.snapshot(t))
			}
			if err != nil {
				t.Log(err)
				if !testutil.Equal(got, old) {
					t.Fatal("failed restore left another database than the old one")
				}
			}
		})
	}
}

// TestCLI_RemoteRetriesExhaustedExit1: through the binary, a server that
// answers every GET of one object with 500 makes the run roll back after
// its retries: exit 1, DB unchanged, the error naming the object and the
// retries.
func TestCLI_RemoteRetriesExhaustedExit1(t *testing.T) {
	s := newServer(t)
	f := newBigPebbleFixture(t, s, "big", 64, 1<<10, 10<<20) // a 10 MiB file
	p := s3test.NewProxy(t, s.gw)
	p.Add(s3test.Rule{Method: "GET", Path: "/big/blob-0", Fault: s3test.Fault500, Times: -1})
	before := f.snapshot(t)
	r := run(t, nil, "restore", "--from", s3test.URL(p.URL(), s.bucket, "big"), "--db", f.db)
	if r.code != 1 || !strings.Contains(r.stderr, "retries exhausted") || !strings.Contains(r.stderr, "s3://"+s.bucket+"/big/blob-0") {
		t.Fatalf("want exit 1 naming the object and the retries: %s", r)
	}
	assertUnchanged(t, before, f.snapshot(t))
}
