package remoterestore

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
)

// kvrflowBin is the kvrflow binary TestMain builds.
var kvrflowBin string

func TestMain(m *testing.M) {
	if os.Getenv(rssHelperEnv) == "1" {
		os.Exit(rssHelper())
	}
	// One binary per user and source tree, replaced atomically by each run
	// (s3test.Main exits the process, so nothing could remove a directory
	// per run).
	dir := filepath.Dir(kvrflowPath())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmp := filepath.Join(dir, fmt.Sprintf("kvrflow.%d", os.Getpid()))
	build := exec.Command("go", "build", "-o", tmp, "github.com/kvrflow/kvrflow/cmd/kvrflow")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build kvrflow: %v\n", err)
		os.Exit(1)
	}
	kvrflowBin = kvrflowPath()
	if err := os.Rename(tmp, kvrflowBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s3test.Main(m)
}

// kvrflowPath is where TestMain puts the binary: one per user and source
// tree (the package's directory), so that runs from two checkouts never
// share one.
func kvrflowPath() string {
	wd, _ := os.Getwd()
	h := fnv.New64a()
	h.Write([]byte(wd))
	return filepath.Join(os.TempDir(), fmt.Sprintf("kvrflow-remoterestore-bin-%d-%x", os.Getuid(), h.Sum64()), "kvrflow")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// server is a bucket on the tests' gateway with the AWS environment set.
type server struct {
	gw     *s3test.Gateway
	bucket string
}

func newServer(t testing.TB) *server {
	t.Helper()
	gw := s3test.Start(t)
	s3test.AWSEnv(t)
	return &server{gw: gw, bucket: s3test.NewBucket(t, gw)}
}

// url is the URL of prefix in the bucket, on the gateway itself.
func (s *server) url(prefix string) string { return s3test.URL(s.gw.Endpoint, s.bucket, prefix) }

// upload puts every file below dir under prefix, keys relative to dir,
// but those named in skip.
func (s *server) upload(t testing.TB, dir, prefix string, skip ...string) {
	t.Helper()
	ctx := context.Background()
	st, err := remote.Open(ctx, s.url(prefix), remote.Options{})
	must(t, err)
	defer st.Close()
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if slices.Contains(skip, filepath.ToSlash(rel)) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, _ := f.Stat()
		_, err = st.Put(ctx, filepath.ToSlash(rel), f, fi.Size())
		return err
	}))
}

// put stores data at key under prefix (replacing what is there).
func (s *server) put(t testing.TB, prefix, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	st, err := remote.Open(ctx, s.url(prefix), remote.Options{})
	must(t, err)
	defer st.Close()
	_, err = st.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
	must(t, err)
}

// pebbleFixture is an old Pebble database at db and a kvrflow backup of
// another, uploaded under prefix "pebble".
type pebbleFixture struct {
	root, db, backup string
	old, new         map[string]string
}

func newPebbleFixture(t testing.TB, s *server, n int) *pebbleFixture {
	t.Helper()
	root := t.TempDir()
	f := &pebbleFixture{root: root, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup")}
	must(t, os.MkdirAll(filepath.Dir(f.db), 0o755))
	src := filepath.Join(root, "src")
	f.new = testutil.MakeDB(t, vfs.Default, src, 2, n)
	if _, err := kvrflow.Backup(context.Background(), src, f.backup, nil); err != nil {
		t.Fatal(err)
	}
	f.old = testutil.MakeDB(t, vfs.Default, f.db, 1, n/2)
	if s != nil {
		s.upload(t, f.backup, "pebble")
	}
	return f
}

// snapshot is every file of the database directory, with its contents.
func (f *pebbleFixture) snapshot(t testing.TB) map[string]string {
	t.Helper()
	return testutil.Snapshot(t, vfs.Default, f.db)
}

func (f *pebbleFixture) keys(t testing.TB) map[string]string {
	t.Helper()
	return testutil.ReadDB(t, vfs.Default, f.db)
}

// result is how one run of the binary ended.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("kvrflow %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs the binary with the test's environment (AWSEnv's) and env.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(kvrflowBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run kvrflow: %v", err)
		}
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = -1
		}
	}
	return r
}

func needLdb(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ldb")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("ldb not on PATH under CI: .ci/run must install rocksdb-tools")
	}
	t.Skip("ldb (Debian rocksdb-tools) not on PATH; apt-get install rocksdb-tools to run the RocksDB tests")
	return ""
}

func ldb(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(needLdb(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ldb %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeRocksDB creates a RocksDB database in dir with n keys derived from
// seed, in three batches (several tables), and returns its `ldb scan`.
func makeRocksDB(t testing.TB, dir string, seed uint64, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	for batch := 0; batch < 3; batch++ {
		var b strings.Builder
		for i := batch; i < n; i += 3 {
			fmt.Fprintf(&b, "key-%07d ==> %x\n", i, rng.Uint64())
		}
		ldb(t, b.String(), "--db="+dir, "--create_if_missing", "load")
	}
	return ldb(t, "", "--db="+dir, "scan")
}

// rocksFixture is an old RocksDB database at db, and a BackupEngine
// directory and a checkpoint of another uploaded under "rocks" and
// "checkpoint".
type rocksFixture struct {
	root, db, backup, checkpoint, src string
	old, new                          string // ldb scan
}

func newRocksFixture(t testing.TB, s *server) *rocksFixture {
	t.Helper()
	needLdb(t)
	root := t.TempDir()
	f := &rocksFixture{root: root, db: filepath.Join(root, "node", "db"), src: filepath.Join(root, "src"),
		backup: filepath.Join(root, "backup"), checkpoint: filepath.Join(root, "checkpoint")}
	must(t, os.MkdirAll(filepath.Dir(f.db), 0o755))
	f.new = makeRocksDB(t, f.src, 2, 300)
	ldb(t, "", "--db="+f.src, "backup", "--backup_dir="+f.backup)
	ldb(t, "", "--db="+f.src, "checkpoint", "--checkpoint_dir="+f.checkpoint)
	f.old = makeRocksDB(t, f.db, 1, 150)
	s.upload(t, f.backup, "rocks")
	s.upload(t, f.checkpoint, "checkpoint")
	return f
}

func (f *rocksFixture) scan(t testing.TB) string {
	t.Helper()
	return ldb(t, "", "--db="+f.db, "scan")
}

// journalDetail returns the details of the newest run's event of db's
// journal named event.
func journalDetail(t testing.TB, db, event string) string {
	t.Helper()
	j, err := journal.Open(db+".kvrflow/journal.db", journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	runs, err := j.Runs(0)
	must(t, err)
	var id uint64
	for _, r := range runs {
		id = max(id, r.ID)
	}
	evs, err := j.Events(id)
	must(t, err)
	for _, ev := range evs {
		if ev.Event == event {
			return string(ev.Details)
		}
	}
	t.Fatalf("run %d has no %s event", id, event)
	return ""
}
