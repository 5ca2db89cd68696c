package kvrflow

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// remoteFixture is a database to back up and an empty prefix on the test
// S3 server.
type remoteFixture struct {
	gw     *s3test.Gateway
	bucket string
	url    string
	db     string
	want   map[string]string
}

func newRemoteFixture(t *testing.T, spec sampledb.Spec) *remoteFixture {
	t.Helper()
	gw := s3test.Start(t)
	s3test.AWSEnv(t)
	f := &remoteFixture{gw: gw, bucket: s3test.NewBucket(t, gw)}
	f.url = s3test.URL(gw.Endpoint, f.bucket, "backups/db1")
	f.db = filepath.Join(t.TempDir(), "db")
	if err := sampledb.Make(vfs.Default, f.db, spec); err != nil {
		t.Fatal(err)
	}
	f.want = testutil.ReadDB(t, vfs.Default, f.db)
	return f
}

// smallSpec has several tables and a WAL; bigSpec a table larger than the
// upload threshold (multipart).
var (
	smallSpec = sampledb.Spec{Seed: 1, Keys: 3000, ValueSize: 200, Flushes: 4}
	bigSpec   = sampledb.Spec{Seed: 2, Keys: 1200, ValueSize: 20 << 10, Flushes: 2, TableSize: 64 << 20, MemTableSize: 64 << 20}
)

// open opens the fixture's prefix (or url) as a Store.
func openStore(t *testing.T, url string) *remote.Store {
	t.Helper()
	s, err := remote.Open(context.Background(), url, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// listing returns "key size etag" of every object under url's prefix.
func listing(t *testing.T, url string) []string {
	t.Helper()
	objs, err := openStore(t, url).List(context.Background())
	if errors.Is(err, remote.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key+" "+strings.Trim(o.ETag, `"`)+" "+o.ModTime.String())
	}
	return out
}

// download copies the backup at url into a new local directory, checking
// every object against the manifest, and returns the directory.
func download(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	s := openStore(t, url)
	var mbuf bytes.Buffer
	if _, _, err := s.Copy(ctx, manifest.Name, &mbuf, remote.Want{Size: -1}); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(bytes.NewReader(mbuf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(m.Files)+1 {
		t.Errorf("%d objects under the prefix, the manifest lists %d files (+ itself)", len(objs), len(m.Files))
	}
	dir := filepath.Join(t.TempDir(), "downloaded")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		var b bytes.Buffer
		if _, _, err := s.Copy(ctx, f.Name, &b, remote.Want{Size: f.Size, CRC32C: f.CRC32C, CheckCRC: true}); err != nil {
			t.Fatalf("object %s is not the manifest's file: %v", f.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.Name), mbuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// uploadDirs returns the upload-* entries in db's kvrflow directory.
func uploadDirs(t *testing.T, db string) []string {
	t.Helper()
	m, _ := filepath.Glob(db + ".kvrflow/" + uploadPrefix + "*")
	return m
}

func TestBackupTo_UploadsACheckedBackupThatRestores(t *testing.T) {
	for _, c := range []struct {
		name string
		spec sampledb.Spec
	}{{"small", smallSpec}, {"multipart", bigSpec}} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "multipart" && testing.Short() {
				t.Skip("a 24 MiB database: not in -short")
			}
			f := newRemoteFixture(t, c.spec)
			res, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Files == 0 || res.Resumed || res.KeptFiles != 0 || res.UploadedFiles != res.Files+1 {
				t.Errorf("result %+v", res)
			}
			if strings.Contains(res.URL, s3test.Secret) {
				t.Errorf("the result holds the secret: %s", res.URL)
			}
			if d := uploadDirs(t, f.db); len(d) != 0 {
				t.Errorf("the local checkpoint is left: %v", d)
			}
			dir := download(t, f.url)
			target := filepath.Join(t.TempDir(), "restored")
			if _, err := Restore(context.Background(), Options{DB: target, Source: dir}); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ReadDB(t, vfs.Default, target); !testutil.Equal(got, f.want) {
				t.Fatalf("restored %d keys, the database had %d", len(got), len(f.want))
			}
		})
	}
}

func TestBackupTo_NeverOverwritesABackup(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	if _, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{}); err != nil {
		t.Fatal(err)
	}
	before := listing(t, f.url)
	_, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{})
	if !errors.Is(err, ErrBackupExists) || !errors.Is(err, steps.ErrBadPath) {
		t.Fatalf("second backup to the same prefix: %v, want ErrBackupExists (bad input)", err)
	}
	if !strings.Contains(err.Error(), "s3://"+f.bucket+"/backups/db1") {
		t.Errorf("the error does not name the URL: %v", err)
	}
	if after := listing(t, f.url); !equalStrings(before, after) {
		t.Errorf("the prefix changed:\nbefore %v\nafter  %v", before, after)
	}
	if d := uploadDirs(t, f.db); len(d) != 0 {
		t.Errorf("a refused backup left a checkpoint: %v", d)
	}
}

// interrupt runs a BackupTo that is cancelled once n files are uploaded,
// and returns its error.
func interrupt(t *testing.T, f *remoteFixture, n int) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	uploaded := 0
	afterUpload = func(string) {
		if uploaded++; uploaded == n {
			cancel()
		}
	}
	defer func() { afterUpload = nil }()
	_, err := BackupTo(ctx, f.db, f.url, RemoteBackupOptions{FilesAtOnce: 1})
	if err == nil {
		t.Fatal("the interrupted backup succeeded")
	}
	return err
}

func TestBackupTo_ResumesAnInterruptedUpload(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	err := interrupt(t, f, 2)
	if !strings.Contains(err.Error(), "run the same backup again") {
		t.Errorf("the interrupted backup's error does not say how to resume: %v", err)
	}
	if errors.Is(err, steps.ErrBadPath) {
		t.Errorf("an interrupted upload is reported as bad input: %v", err)
	}
	objs := listing(t, f.url)
	for _, o := range objs {
		if strings.HasPrefix(o, manifest.Name+" ") {
			t.Fatalf("an interrupted upload wrote the manifest: %v", objs)
		}
	}
	if len(objs) < 2 || len(uploadDirs(t, f.db)) != 1 {
		t.Fatalf("after the interruption: objects %v, local checkpoints %v", objs, uploadDirs(t, f.db))
	}
	// The database moves on; the resumed backup is the checkpoint the
	// interrupted one made.
	testutil.MakeDB(t, vfs.Default, f.db, 9, 100)
	res, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.KeptFiles < 2 || res.UploadedBytes >= res.Bytes || res.KeptFiles+res.UploadedFiles != res.Files+1 {
		t.Errorf("resumed upload: %+v; want the objects already there kept, fewer bytes uploaded", res)
	}
	t.Logf("resumed: kept %d files (%d bytes), uploaded %d (%d bytes) of %d bytes", res.KeptFiles, res.KeptBytes, res.UploadedFiles, res.UploadedBytes, res.Bytes)
	if d := uploadDirs(t, f.db); len(d) != 0 {
		t.Errorf("the local checkpoint is left: %v", d)
	}
	dir := download(t, f.url)
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(context.Background(), Options{DB: target, Source: dir}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, target); !testutil.Equal(got, f.want) {
		t.Fatalf("restored %d keys, the database had %d when the backup began", len(got), len(f.want))
	}
}

func TestBackupTo_RefusesAnObjectInTheWay(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	interrupt(t, f, 2)
	s := openStore(t, f.url)
	objs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One uploaded object replaced by other bytes of the same size.
	victim := objs[0]
	junk := bytes.Repeat([]byte{'x'}, int(victim.Size))
	if _, err := s.Put(context.Background(), victim.Key, bytes.NewReader(junk), victim.Size); err != nil {
		t.Fatal(err)
	}
	before := listing(t, f.url)
	_, err = BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{})
	if !errors.Is(err, ErrObjectInTheWay) || !errors.Is(err, steps.ErrBadPath) || !strings.Contains(err.Error(), victim.Key) {
		t.Fatalf("backup over a changed object: %v; want ErrObjectInTheWay naming %s", err, victim.Key)
	}
	if after := listing(t, f.url); !equalStrings(before, after) {
		t.Errorf("the prefix changed:\nbefore %v\nafter  %v", before, after)
	}

	// A stranger under a fresh prefix: refused before anything is written.
	url := s3test.URL(f.gw.Endpoint, f.bucket, "backups/db2")
	if _, err := openStore(t, url).Put(context.Background(), "notes.txt", strings.NewReader("mine"), 4); err != nil {
		t.Fatal(err)
	}
	_, err = BackupTo(context.Background(), f.db, url, RemoteBackupOptions{})
	if !errors.Is(err, ErrObjectInTheWay) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("backup beside a stranger: %v", err)
	}
	if got := listing(t, url); len(got) != 1 {
		t.Errorf("the prefix changed: %v", got)
	}
}

func TestBackupTo_FaultsAreRetriedOrRefusedWithoutAManifest(t *testing.T) {
	for _, c := range []struct {
		name    string
		rules   []s3test.Rule
		wantErr error // nil: the backup succeeds through the retries
	}{
		{"500s and resets retried", []s3test.Rule{
			{Method: "PUT", Fault: s3test.Fault500, Times: 2},
			{Method: "PUT", Fault: s3test.FaultReset, Times: 1},
			{Method: "GET", Fault: s3test.FaultSlowDown, Times: 1},
		}, nil},
		{"403 refused", []s3test.Rule{{Method: "PUT", Fault: s3test.Fault403, Times: -1}}, remote.ErrAccessDenied},
		{"500s forever", []s3test.Rule{{Method: "PUT", Fault: s3test.Fault500, Times: -1}}, remote.ErrRetriesExhausted},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newRemoteFixture(t, smallSpec)
			p := s3test.NewProxy(t, f.gw)
			for _, r := range c.rules {
				p.Add(r)
			}
			url := s3test.URL(p.URL(), f.bucket, "backups/db1")
			opts := RemoteBackupOptions{Remote: remote.Options{RetryInitial: 1, RetryMax: 1}}
			_, err := BackupTo(context.Background(), f.db, url, opts)
			if c.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				download(t, f.url)
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "s3://"+f.bucket+"/backups/db1") || strings.Contains(msg, s3test.Secret) {
				t.Errorf("want one line naming the URL, without the secret: %q", msg)
			}
			if c.wantErr == remote.ErrAccessDenied && !errors.Is(err, steps.ErrBadPath) {
				t.Errorf("a 403 is not bad input: %v", err)
			}
			for _, o := range listing(t, f.url) {
				if strings.HasPrefix(o, manifest.Name+" ") {
					t.Fatalf("a failed upload wrote the manifest")
				}
			}
		})
	}
}

func TestBackupTo_MissingBucketOrBadURLIsBadInput(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	for _, url := range []string{
		s3test.URL(f.gw.Endpoint, "no-such-bucket", "x"),
		"s3://" + f.bucket + "/x?endpoint=" + f.gw.Endpoint + "&bogus=1",
		"ftp://host/x",
	} {
		_, err := BackupTo(context.Background(), f.db, url, RemoteBackupOptions{})
		if !errors.Is(err, steps.ErrBadPath) {
			t.Errorf("%s: %v, want bad input", url, err)
		}
		if _, serr := os.Stat(f.db + ".kvrflow"); serr == nil {
			t.Errorf("%s: a refused backup made %s.kvrflow", url, f.db)
		}
	}
}

func TestBackupTo_LeftoversRemovedOnlyWhenProven(t *testing.T) {
	f := newRemoteFixture(t, smallSpec)
	// A proven leftover for another URL, and two strangers at upload names.
	other := s3test.URL(f.gw.Endpoint, f.bucket, "elsewhere")
	ctx, cancel := context.WithCancel(context.Background())
	afterUpload = func(string) { cancel() }
	_, err := BackupTo(ctx, f.db, other, RemoteBackupOptions{FilesAtOnce: 1})
	afterUpload = nil
	if err == nil {
		t.Fatal("the interrupted backup succeeded")
	}
	proven := uploadDirs(t, f.db)
	if len(proven) != 1 {
		t.Fatalf("want one local checkpoint, got %v", proven)
	}
	work := f.db + ".kvrflow"
	noMarker := filepath.Join(work, uploadPrefix+"0123456789abcdef")
	if err := os.MkdirAll(filepath.Join(noMarker, "checkpoint"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A copy of a real one: its marker is right, its identity is not;
	// and the real one under a name that is not upload-ID.
	copied := filepath.Join(work, uploadPrefix+strings.TrimPrefix(filepath.Base(proven[0]), uploadPrefix))
	moved := copied + ".x"
	if err := os.Rename(proven[0], moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(copied, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(moved, uploadMarkerName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(copied, uploadMarkerName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(work, uploadPrefix+"fedcba9876543210") // a crash before its marker
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := BackupTo(context.Background(), f.db, f.url, RemoteBackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(empty); err == nil || len(res.Removed) != 1 || res.Removed[0] != empty {
		t.Errorf("an empty upload directory was not removed: %v", res.Removed)
	}
	if len(res.Unproven) != 3 {
		t.Errorf("unproven %v; want three reported (the real one renamed too)", res.Unproven)
	}
	for _, p := range []string{noMarker, copied, moved} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// The real one back at its name: proven, for another URL, removed.
	os.RemoveAll(copied)
	if err := os.Rename(moved, copied); err != nil {
		t.Fatal(err)
	}
	url := s3test.URL(f.gw.Endpoint, f.bucket, "third")
	if res, err = BackupTo(context.Background(), f.db, url, RemoteBackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0] != copied {
		t.Errorf("removed %v, want %s", res.Removed, copied)
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestBackupTo_FileURL(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	want := testutil.MakeDB(t, vfs.Default, db, 4, 500)
	root := t.TempDir()
	url := "file://" + root
	res, err := BackupTo(context.Background(), db, url, RemoteBackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BackupTo(context.Background(), db, url, RemoteBackupOptions{}); !errors.Is(err, ErrBackupExists) {
		t.Errorf("second backup to %s: %v, want ErrBackupExists", url, err)
	}
	dir := download(t, url)
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(context.Background(), Options{DB: target, Source: dir}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadDB(t, vfs.Default, target); !testutil.Equal(got, want) {
		t.Fatalf("restored %d keys, the database had %d (%+v)", len(got), len(want), res)
	}
}
