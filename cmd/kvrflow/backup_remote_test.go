package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// remoteBackupJSON is backup --to URL --json's document.
type remoteBackupJSON struct {
	URL           string   `json:"url"`
	Files         int      `json:"files"`
	Bytes         int64    `json:"bytes"`
	Resumed       bool     `json:"resumed"`
	UploadedFiles int      `json:"uploaded_files"`
	UploadedBytes int64    `json:"uploaded_bytes"`
	KeptFiles     int      `json:"kept_files"`
	KeptBytes     int64    `json:"kept_bytes"`
	Created       string   `json:"created"`
	Removed       []string `json:"removed_leftovers"`
	Unproven      []string `json:"unproven_leftovers"`
	ExitCode      int      `json:"exit_code"`
	Error         string   `json:"error"`
}

// s3Fixture is a database and an empty bucket on the test S3 server, with
// the environment set to its credentials.
func s3Fixture(t *testing.T, spec sampledb.Spec) (gw *s3test.Gateway, bucket, db string) {
	t.Helper()
	gw = s3test.Start(t)
	s3test.AWSEnv(t)
	bucket = s3test.NewBucket(t, gw)
	db = filepath.Join(t.TempDir(), "db")
	if err := sampledb.Make(vfs.Default, db, spec); err != nil {
		t.Fatal(err)
	}
	return gw, bucket, db
}

// objects returns the keys under url's prefix.
func objects(t *testing.T, url string) []string {
	t.Helper()
	s, err := remote.Open(context.Background(), url, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.List(context.Background())
	if errors.Is(err, remote.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func noSecret(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stdout+r.stderr, s3test.Secret) {
		t.Errorf("the output holds the secret access key:\n%s", r)
	}
}

func TestBackupToURL_UploadsOnceThenRefusesToOverwrite(t *testing.T) {
	gw, bucket, db := s3Fixture(t, sampledb.Spec{Seed: 1, Keys: 2000, ValueSize: 100, Flushes: 3})
	url := s3test.URL(gw.Endpoint, bucket, "app/1")
	r := mustRun(t, exitOK, nil, "backup", "--db", db, "--to", url, "--json", "--log-level", "debug", "--rate-limit", "1GiB/s")
	noSecret(t, r)
	var doc remoteBackupJSON
	decode(t, r, &doc)
	if doc.Files == 0 || doc.Bytes == 0 || doc.UploadedFiles != doc.Files+1 || doc.Resumed || !strings.HasPrefix(doc.URL, "s3://"+bucket+"/app/1") {
		t.Errorf("backup --json = %+v", doc)
	}
	keys := objects(t, url)
	if len(keys) != doc.Files+1 {
		t.Errorf("%d objects, want %d files and the manifest: %v", len(keys), doc.Files, keys)
	}

	r = mustRun(t, exitUsage, nil, "backup", "--db", db, "--to", url)
	noSecret(t, r)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "a backup already exists at s3://"+bucket+"/app/1") {
		t.Errorf("want one error line saying a backup exists at the URL:\n%s", r)
	}
	if after := objects(t, url); strings.Join(after, " ") != strings.Join(keys, " ") {
		t.Errorf("the refused backup changed the prefix: %v, was %v", after, keys)
	}
}

func TestBackupToURL_KilledUploadResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("a rate-limited upload killed half way: not in -short")
	}
	gw, bucket, db := s3Fixture(t, sampledb.Spec{Seed: 3, Keys: 4000, ValueSize: 1000, Flushes: 8})
	url := s3test.URL(gw.Endpoint, bucket, "app/1")
	cmd, stdout, stderr := newCmd(nil, "backup", "--db", db, "--to", url, "--rate-limit", "1MiB/s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once some objects are in, before the manifest.
	for deadline := time.Now().Add(time.Minute); len(objects(t, url)) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no object uploaded in a minute")
		}
	}
	cmd.Process.Kill()
	r := ended(t, cmd, stdout, stderr, cmd.Wait())
	if r.signal == 0 {
		t.Skipf("the upload ended before the kill: %s", r)
	}
	for _, k := range objects(t, url) {
		if k == "KVRFLOW-BACKUP" {
			t.Fatal("a killed upload left a manifest")
		}
	}
	r = mustRun(t, exitOK, nil, "backup", "--db", db, "--to", url, "--json")
	var doc remoteBackupJSON
	decode(t, r, &doc)
	if !doc.Resumed || doc.KeptFiles < 1 || doc.UploadedBytes >= doc.Bytes {
		t.Errorf("re-run after the kill: %+v; want a resumed upload that uploads less than the backup", doc)
	}
	t.Logf("re-run uploaded %d of %d bytes (%d files kept)", doc.UploadedBytes, doc.Bytes, doc.KeptFiles)
}

func TestBackupToURL_RefusedRequestsAndMissingBucketExit2(t *testing.T) {
	gw, bucket, db := s3Fixture(t, sampledb.Spec{Seed: 1, Keys: 500, Flushes: 2})
	p := s3test.NewProxy(t, gw)
	p.Add(s3test.Rule{Method: "PUT", Fault: s3test.Fault403, Times: -1})
	for _, url := range []string{
		s3test.URL(p.URL(), bucket, "app/1"),
		s3test.URL(gw.Endpoint, "no-such-bucket", "app/1"),
	} {
		r := mustRun(t, exitUsage, nil, "backup", "--db", db, "--to", url)
		noSecret(t, r)
		t.Logf("%s", strings.TrimSpace(r.stderr))
		base, _, _ := strings.Cut(url, "?")
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], base) {
			t.Errorf("want one error line naming %s:\n%s", base, r)
		}
	}
	if keys := objects(t, s3test.URL(gw.Endpoint, bucket, "app/1")); len(keys) != 0 {
		t.Errorf("a refused upload left objects: %v", keys)
	}
	// A 403 keeps the checkpoint (a re-run resumes); the database is as it was.
	testutil.ReadDB(t, vfs.Default, db)
}

func TestBackupToURL_UsageErrors(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "db")
	testutil.MakeDB(t, vfs.Default, db, 1, 10)
	for _, args := range [][]string{
		{"--to", filepath.Join(root, "b"), "--rate-limit", "1MiB/s"},
		{"--to", "s3://bucket/p", "--copy"},
		{"--to", "s3://bucket/p", "--rate-limit", "fast"},
		{"--to", "ftp://host/p"},
	} {
		mustRun(t, exitUsage, []string{"AWS_EC2_METADATA_DISABLED=true"}, append([]string{"backup", "--db", db}, args...)...)
	}
}

func TestBackupToURL_InterruptedUploadSaysHowToResume(t *testing.T) {
	if testing.Short() {
		t.Skip("a rate-limited upload interrupted half way: not in -short")
	}
	gw, bucket, db := s3Fixture(t, sampledb.Spec{Seed: 4, Keys: 4000, ValueSize: 1000, Flushes: 8})
	url := s3test.URL(gw.Endpoint, bucket, "app/1")
	cmd, stdout, stderr := newCmd(nil, "backup", "--db", db, "--to", url, "--rate-limit", "1MiB/s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(objects(t, url)) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no object uploaded in a minute")
		}
	}
	cmd.Process.Signal(os.Interrupt)
	r := ended(t, cmd, stdout, stderr, cmd.Wait())
	if r.code == exitOK {
		t.Skipf("the upload ended before the signal: %s", r)
	}
	if r.code != exitRolledBack || !strings.Contains(r.stderr, "run the same backup again to resume") {
		t.Fatalf("want exit 1 saying how to resume: %s", r)
	}
	r = mustRun(t, exitOK, nil, "backup", "--db", db, "--to", url, "--json")
	var doc remoteBackupJSON
	decode(t, r, &doc)
	if !doc.Resumed || doc.KeptFiles < 1 {
		t.Errorf("re-run after SIGINT: %+v; want a resumed upload", doc)
	}
}
