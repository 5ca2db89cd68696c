package remoterestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/steps"
)

// firstSST is the name of the first table of a backup directory.
func firstSST(t testing.TB, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no .sst in %s", dir)
	}
	return filepath.Base(m[0])
}

// TestRestore_RemoteBadInputLeavesDatabaseUntouched: each bad remote
// source is refused with a one-line error matching ErrBadSource (exit 2)
// or ErrBadOption, naming the URL (and key) and the cause, and the
// database is unchanged byte for byte.
func TestRestore_RemoteBadInputLeavesDatabaseUntouched(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, s, 200)
	tests := []struct {
		name    string
		prepare func(t *testing.T, f *pebbleFixture, o *kvrflow.Options)
		want    error
		mention []string // what the message must name
	}{
		{"missing bucket", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.Source = s3test.URL(s.gw.Endpoint, "no-such-bucket-here", "pebble")
		}, steps.ErrBadSource, []string{"s3://no-such-bucket-here/pebble", "not found"}},
		{"missing prefix", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.Source = s.url("nothing-here")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/nothing-here", "nothing is stored"}},
		{"a prefix that only begins another's name", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.Source = s.url("pebbl") // "pebble" holds the backup: s3://b/pebbl is not s3://b/pebble
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/pebbl", "nothing is stored"}},
		{"wrong secret (403)", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/pebble", "access denied"}},
		{"unknown access key", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			t.Setenv("AWS_ACCESS_KEY_ID", "nosuchkey")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/pebble", "access denied"}},
		{"unsupported scheme", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.Source = "http://" + s.bucket + "/pebble"
		}, steps.ErrBadSource, []string{"http://" + s.bucket + "/pebble", "unsupported scheme"}},
		{"manifest names an absent object", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "absent", firstSST(t, f.backup))
			o.Source = s.url("absent")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/absent/" + firstSST(t, f.backup), "not stored"}},
		{"truncated object", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "truncated")
			name := firstSST(t, f.backup)
			b, err := os.ReadFile(filepath.Join(f.backup, name))
			must(t, err)
			s.put(t, "truncated", name, b[:len(b)/2])
			o.Source = s.url("truncated")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/truncated/" + firstSST(t, f.backup), "truncated"}},
		{"corrupt object (crc32c)", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "corrupt")
			name := firstSST(t, f.backup)
			b, err := os.ReadFile(filepath.Join(f.backup, name))
			must(t, err)
			b[len(b)/2] ^= 0x10
			s.put(t, "corrupt", name, b)
			o.Source = s.url("corrupt")
		}, steps.ErrChecksum, []string{"s3://" + s.bucket + "/corrupt/" + firstSST(t, f.backup), "checksum mismatch"}},
		{"object changed after listing", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "changed")
			name := firstSST(t, f.backup)
			b, err := os.ReadFile(filepath.Join(f.backup, name))
			must(t, err)
			o.Source = s.url("changed")
			b[len(b)/2] ^= 0x10
			// Write reports 0 bytes before it reads any object: the
			// object is replaced (same size, another ETag) after
			// Precheck listed it.
			o.Progress = func(done, total int64, unit string) {
				if done == 0 {
					s.put(t, "changed", name, b)
				}
			}
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/changed/" + firstSST(t, f.backup), "object changed"}},
		{"unlisted object", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "unlisted")
			s.put(t, "unlisted", "extra", []byte("x"))
			o.Source = s.url("unlisted")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/unlisted/extra", "not listed"}},
		{"corrupt manifest", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.upload(t, f.backup, "badmanifest")
			b, err := os.ReadFile(filepath.Join(f.backup, manifest.Name))
			must(t, err)
			b[len(b)/2] ^= 0x01
			s.put(t, "badmanifest", manifest.Name, b)
			o.Source = s.url("badmanifest")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/badmanifest/" + manifest.Name}},
		{"no known source", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			s.put(t, "junk", "something", []byte("x"))
			o.Source = s.url("junk")
		}, steps.ErrBadSource, []string{"s3://" + s.bucket + "/junk/", "no KVRFLOW-BACKUP manifest"}},
		{"--mode link", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.Mode = steps.ModeLink
		}, steps.ErrBadOption, []string{"s3://" + s.bucket + "/pebble", "object store"}},
		{"--backup-id on a kvrflow backup", func(t *testing.T, f *pebbleFixture, o *kvrflow.Options) {
			o.BackupID = 3
		}, steps.ErrBadOption, []string{"s3://" + s.bucket + "/pebble", "--backup-id 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := kvrflow.Options{DB: f.db, Source: s.url("pebble")}
			tt.prepare(t, f, &o)
			before := f.snapshot(t)
			_, err := kvrflow.Restore(context.Background(), o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("message not one line: %q", msg)
			}
			for _, m := range tt.mention {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not name %q", msg, m)
				}
			}
			assertUnchanged(t, before, f.snapshot(t))
		})
	}
}

// assertUnchanged fails the test if a directory snapshot changed.
func assertUnchanged(t testing.TB, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("database changed: %d entries before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("database changed: %s differs", k)
		}
	}
}

// TestRestore_RemoteRocksDBBackups: a prefix holding two BackupEngine
// backups is refused without --backup-id, naming both (as a local
// directory is); --backup-id picks one.
func TestRestore_RemoteRocksDBBackups(t *testing.T) {
	s := newServer(t)
	f := newRocksFixture(t, s)
	// A second backup, of the database after more keys.
	ldb(t, "key-9999999 ==> 01\n", "--db="+f.src, "load")
	newer := ldb(t, "", "--db="+f.src, "scan")
	two := filepath.Join(f.root, "two")
	must(t, os.Rename(f.backup, two))
	ldb(t, "", "--db="+f.src, "backup", "--backup_dir="+two)
	s.upload(t, two, "two")
	for _, src := range []string{s.url("two"), two} {
		before := f.scan(t)
		_, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: src})
		if !errors.Is(err, steps.ErrBadSource) || !strings.Contains(err.Error(), "2 backups (1, 2); choose one with --backup-id") {
			t.Fatalf("%s: got %v, want two backups refused", src, err)
		}
		if f.scan(t) != before {
			t.Fatal("database changed")
		}
	}
	for id, want := range map[uint64]string{1: f.new, 2: newer} {
		if _, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: s.url("two"), BackupID: id}); err != nil {
			t.Fatal(err)
		}
		if f.scan(t) != want {
			t.Fatalf("--backup-id %d: restored database differs from that backup", id)
		}
	}
	_, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: s.url("two"), BackupID: 7})
	if !errors.Is(err, steps.ErrBadSource) || !strings.Contains(err.Error(), "no backup 7; the backups there are 1, 2") {
		t.Fatalf("--backup-id 7: got %v", err)
	}
}
