package remoterestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// newBigPebbleFixture is a pebbleFixture whose backup holds keys random
// values of valueSize bytes in several tables, and a file of random bytes
// of each size in blobs (which the database does not use), uploaded under
// prefix.
func newBigPebbleFixture(t testing.TB, s *server, prefix string, keys, valueSize int, blobs ...int64) *pebbleFixture {
	t.Helper()
	root := t.TempDir()
	f := &pebbleFixture{root: root, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup")}
	must(t, os.MkdirAll(filepath.Dir(f.db), 0o755))
	src := filepath.Join(root, "src")
	must(t, sampledb.Make(nil, src, sampledb.Spec{Seed: 42, Keys: keys, ValueSize: valueSize, Flushes: 4}))
	f.new = testutil.ReadDB(t, vfs.Default, src)
	if _, err := kvrflow.Backup(context.Background(), src, f.backup, nil); err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(src))
	for i, size := range blobs {
		must(t, sampledb.AddFile(f.backup, fmt.Sprintf("blob-%d", i), size, uint64(i)))
	}
	f.old = testutil.MakeDB(t, vfs.Default, f.db, 1, 200)
	s.upload(t, f.backup, prefix)
	return f
}

// TestRestore_RemoteKilledThenRecovered kills (SIGKILL) a restore from the
// server at a random moment (listing, transfer, verify, commit), then runs
// kvrflow recover: DB holds the old database or the backup's, complete,
// and a restore after it commits. More moments behind !testing.Short().
func TestRestore_RemoteKilledThenRecovered(t *testing.T) {
	s := newServer(t)
	// About 10 MiB, transferred at 8 MiB/s: the run lasts over a second.
	f := newBigPebbleFixture(t, s, "big", 640, 16<<10)
	iterations := 4
	if !testing.Short() {
		iterations = 16
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	outcomes := map[string]int{}
	for i := range iterations {
		delay := time.Duration(rng.Int64N(int64(2500 * time.Millisecond)))
		cmd := exec.Command(kvrflowBin, "restore", "--from", s.url("big"), "--db", f.db, "--rate-limit", "8MiB/s")
		cmd.Env = os.Environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("iteration %d: restore failed before the kill: %v\n%s", i, err, stderr.String())
			}
		case <-time.After(delay):
			must(t, cmd.Process.Kill())
			<-done
			killed = true
		}
		r := run(t, nil, "recover", "--db", f.db)
		if r.code != 0 {
			t.Fatalf("iteration %d (killed after %v): %s", i, delay, r)
		}
		got := f.keys(t)
		switch {
		case testutil.Equal(got, f.new):
			outcomes["new"]++
		case testutil.Equal(got, f.old):
			outcomes["old"]++
		default:
			t.Fatalf("iteration %d (killed %v after %v): DB holds neither the old database nor the backup's", i, killed, delay)
		}
		// Back to the old database for the next iteration.
		must(t, os.RemoveAll(f.db))
		must(t, os.RemoveAll(f.db+".kvrflow"))
		f.old = testutil.MakeDB(t, vfs.Default, f.db, 1, 200)
	}
	t.Logf("after kill and recover: %v", outcomes)
	if r := run(t, nil, "restore", "--from", s.url("big"), "--db", f.db); r.code != 0 {
		t.Fatalf("restore after the kills: %s", r)
	}
	if !testutil.Equal(f.keys(t), f.new) {
		t.Fatal("restore after the kills: DB differs from the backup")
	}
}

// TestCLI_RemoteSIGINTRollsBack interrupts a rate-limited remote restore
// with SIGINT while it transfers: it rolls back (exit 1) and DB holds the
// old database, or, had it already finished, the backup's (exit 0).
func TestCLI_RemoteSIGINTRollsBack(t *testing.T) {
	s := newServer(t)
	f := newBigPebbleFixture(t, s, "big", 640, 16<<10)
	cmd := exec.Command(kvrflowBin, "restore", "--from", s.url("big"), "--db", f.db, "--rate-limit", "2MiB/s")
	cmd.Env = os.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	time.Sleep(time.Second) // a moment into the transfer (not a timing assertion)
	must(t, cmd.Process.Signal(os.Interrupt))
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	got := f.keys(t)
	switch {
	case code == 1 && testutil.Equal(got, f.old):
		t.Logf("interrupted: %s", bytes.TrimSpace(stderr.Bytes()))
	case code == 0 && testutil.Equal(got, f.new):
		t.Log("finished before the signal")
	default:
		t.Fatalf("exit %d (%v), DB old %v, new %v:\n%s", code, err, testutil.Equal(got, f.old), testutil.Equal(got, f.new), stderr.String())
	}
	if r := run(t, nil, "recover", "--db", f.db); r.code != 0 {
		t.Fatalf("recover: %s", r)
	}
	if !testutil.Equal(f.keys(t), got) {
		t.Fatal("recover changed the database")
	}
}
