package remoterestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// TestRestore_RemoteDamagedPrefixIsNotResumed: one byte of a large
// object is flipped in transit, after which the copy's progress is
// journaled (an fdatasynced prefix holding the bad byte, with the
// crc32c of what was written); the object's crc32c then fails the run
// (exit 2). The same restore run again, the network now sound, must
// commit the backup: the bad prefix is not a resume point (each re-run
// would otherwise continue it, and fail the same check, for ever).
func TestRestore_RemoteDamagedPrefixIsNotResumed(t *testing.T) {
	s := newServer(t)
	every, get := steps.PartialEvery, steps.RemoteGetSize
	steps.PartialEvery, steps.RemoteGetSize = 1<<20, 4<<20
	t.Cleanup(func() { steps.PartialEvery, steps.RemoteGetSize = every, get })
	f := newPebbleFixture(t, nil, 200)
	must(t, sampledb.AddFile(f.backup, "000999.blob", 8<<20, 5))
	s.upload(t, f.backup, "flip")
	p := s3test.NewProxy(t, s.gw)
	url := s3test.URL(p.URL(), s.bucket, "flip")
	// The first GET of the blob (bytes 0 to 4 MiB) has its byte at 2 MiB
	// flipped: the notes at 3 and 4 MiB journal a prefix holding it.
	p.Add(s3test.Rule{Method: "GET", Path: "/000999.blob", Fault: s3test.FaultFlip, Times: 1})
	_, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: url})
	if !kvrflow.IsRolledBack(err) || !errors.Is(err, steps.ErrBadSource) {
		t.Fatalf("the damaged run: %v, want a checksum mismatch, rolled back", err)
	}
	if got := p.Requests("GET", "/000999.blob"); len(got) != 2 {
		t.Fatalf("GETs of the blob %v, want two (the flipped one, then the rest)", got)
	}
	if _, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: url}); err != nil {
		t.Fatalf("the re-run over a sound network: %v", err)
	}
	if !testutil.Equal(f.keys(t), f.new) {
		t.Fatal("the re-run's database differs from the backup")
	}
	sameFile(t, filepath.Join(f.backup, "000999.blob"), filepath.Join(f.db, "000999.blob"))
}

// sameFile fails the test unless the files at a and b hold the same bytes
// (a file the database does not read, such as a blob added to a backup,
// is not covered by comparing the keys).
func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	must(t, err)
	y, err := os.ReadFile(b)
	must(t, err)
	if !bytes.Equal(x, y) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", b, len(y), a, len(x))
	}
}

// TestCLI_RemoteKilledAfterADamagedNoteRestartsTheFile: one byte of a
// 256 MiB object is flipped in transit (the first GET, at 32 MiB), and the
// restore is killed (SIGKILL) once a progress note of that object, whose
// prefix holds the bad byte, was journaled. The re-run, the network now
// sound, continues the journaled prefix, finds the object's crc32c wrong
// at its end, and copies the file again from its first byte: it commits
// the backup, in one run.
func TestCLI_RemoteKilledAfterADamagedNoteRestartsTheFile(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, nil, 200)
	must(t, sampledb.AddFile(f.backup, "000999.blob", 256<<20, 5))
	s.upload(t, f.backup, "flipkill")
	p := s3test.NewProxy(t, s.gw)
	p.Add(s3test.Rule{Method: "GET", Path: "/000999.blob", Fault: s3test.FaultFlip, Times: 1})
	args := []string{"restore", "--from", s3test.URL(p.URL(), s.bucket, "flipkill"), "--db", f.db}
	if r := run(t, []string{fault.EnvVar + "=write.batch-noted:crash@3"}, args...); r.code != -1 {
		t.Fatalf("want the restore killed by SIGKILL after note 3: %s", r)
	}
	if r := run(t, nil, args...); r.code != 0 || !strings.Contains(r.stderr, "copying the file again from its first byte") {
		t.Fatalf("the re-run: %s; want it committed, having resumed the damaged prefix and copied the file again", r)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("the re-run's database differs from the backup")
	}
	sameFile(t, filepath.Join(f.backup, "000999.blob"), filepath.Join(f.db, "000999.blob"))
	if r := run(t, nil, "journal", "verify", "--db", f.db); r.code != 0 {
		t.Fatalf("the journal, with the forgotten partial note: %s", r)
	}
}

// TestCLI_RemoteObjectReplacedAfterAKillIsRefusedThenRestored: a restore
// is killed mid-object (its progress journaled); the object is then
// replaced in the bucket by other bytes of the same size (the manifest
// unchanged). The re-run must not commit a file made of the old prefix
// and the new rest: it refuses the object (exit 2, checksum), DB as it
// was. With the original object put back, a third run commits the backup,
// byte for byte.
func TestCLI_RemoteObjectReplacedAfterAKillIsRefusedThenRestored(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, nil, 200)
	must(t, sampledb.AddFile(f.backup, "000999.blob", 160<<20, 5))
	s.upload(t, f.backup, "replaced")
	args := []string{"restore", "--from", s.url("replaced"), "--db", f.db}
	if r := run(t, []string{fault.EnvVar + "=write.batch-noted:crash@2"}, args...); r.code != -1 {
		t.Fatalf("want the restore killed by SIGKILL after note 2: %s", r)
	}
	before := f.snapshot(t)
	orig, err := os.ReadFile(filepath.Join(f.backup, "000999.blob"))
	must(t, err)
	other := bytes.Clone(orig)
	for i := 100 << 20; i < len(other); i += 4096 {
		other[i] ^= 0x5a // past the journaled prefix: the rest differs
	}
	s.put(t, "replaced", "000999.blob", other)
	if r := run(t, nil, args...); r.code != 2 || !strings.Contains(r.stderr, "checksum mismatch") {
		t.Fatalf("the re-run over the replaced object: %s; want exit 2, checksum mismatch", r)
	}
	assertUnchanged(t, before, f.snapshot(t))
	s.put(t, "replaced", "000999.blob", orig)
	if r := run(t, nil, args...); r.code != 0 {
		t.Fatalf("the run over the original object: %s", r)
	}
	if !testutil.Equal(f.keys(t), f.new) {
		t.Fatal("the database differs from the backup")
	}
	sameFile(t, filepath.Join(f.backup, "000999.blob"), filepath.Join(f.db, "000999.blob"))
}
