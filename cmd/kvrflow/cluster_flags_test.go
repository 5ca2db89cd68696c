package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/etcdproc"
)

// TestEtcdError_RefusedCredentialsAreBadInput: what etcd answers a client
// without a password, with a wrong one, or with a user outside its
// permissions, is exit 2, in one line naming the endpoint; an etcd that
// does not answer is not (the agent's undecided case, exit 5, is its).
func TestEtcdError_RefusedCredentialsAreBadInput(t *testing.T) {
	s := etcdproc.Start(t, etcdproc.Options{TLS: true, Auth: true})
	base := cluster.Config{Endpoints: []string{s.Endpoint}, CACert: s.Certs.CA, Cert: s.Certs.ClientCert, Key: s.Certs.ClientKey,
		DialTimeout: 2 * time.Second}
	ask := func(c cluster.Config, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, err := cluster.Connect(ctx, c)
		if err != nil {
			return etcdError(err, c)
		}
		defer cli.Close()
		_, err = cli.Get(ctx, key)
		return etcdError(err, c)
	}
	withUser := func(user, pw string) cluster.Config { c := base; c.User, c.Password = user, pw; return c }
	for name, err := range map[string]error{
		"no password":    ask(base, "/kvrflow/x"),
		"wrong password": ask(withUser(etcdproc.User, "wrong"), "/kvrflow/x"),
		"outside prefix": ask(withUser(etcdproc.User, s.Password), "/other/x"),
	} {
		t.Logf("%s: %v", name, err)
		if code := exitCode(err); code != exitUsage {
			t.Errorf("%s: exit %d, want 2: %v", name, code, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, s.Endpoint) || strings.Contains(msg, "\n") {
			t.Errorf("%s: want one line naming %s: %q", name, s.Endpoint, msg)
		}
	}
	if err := ask(withUser(etcdproc.User, s.Password), "/kvrflow/x"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	// gRPC says only "context deadline exceeded"; the error says why.
	other, err := etcdproc.GenerateCerts(t.TempDir())
	must(t, err)
	wrongCA := withUser(etcdproc.User, s.Password)
	wrongCA.CACert = other.CA
	if err := ask(wrongCA, "/kvrflow/x"); err == nil || !strings.Contains(err.Error(), "x509") || !strings.Contains(err.Error(), s.Endpoint) {
		t.Errorf("a CA that did not sign etcd's certificate: want an error naming %s and the x509 cause, got %v", s.Endpoint, err)
	}
	s.Stop()
	err = ask(withUser(etcdproc.User, s.Password), "/kvrflow/x")
	if err == nil || exitCode(err) == exitUsage || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("etcd stopped: want an error saying connection refused, not bad input; got %v (exit %d)", err, exitCode(err))
	}
}

// TestRecover_PreparedRunWaitsForTheDecisionOrTheOperators: a run a
// cluster restore left prepared is not decided by recover: it exits 5,
// DIR still old, and says how to finish it; --decision commit finishes it
// (DIR new), --decision abort rolls it back (DIR old).
func TestRecover_PreparedRunWaitsForTheDecisionOrTheOperators(t *testing.T) {
	for _, decision := range []string{"commit", "abort"} {
		t.Run(decision, func(t *testing.T) {
			f := newFixture(t, 10, 20)
			prepareInChild(t, f.db, f.backup)
			r := mustRun(t, exitInFlight, nil, "recover", "--db", f.db)
			if line := oneErrorLine(t, r); !strings.Contains(line, "cluster agent --once") || !strings.Contains(line, "--decision") {
				t.Errorf("recover of a prepared run: %s", line)
			}
			if got := f.which(t); got != "old" {
				t.Fatalf("after recover without a decision DIR holds %s", got)
			}
			mustRun(t, exitUsage, nil, "recover", "--db", f.db, "--decision", "maybe")
			r = mustRun(t, exitOK, nil, "recover", "--db", f.db, "--decision", decision)
			if !strings.Contains(r.stderr, "WARNING") || !strings.Contains(r.stderr, "c1") {
				t.Errorf("recover --decision without --etcd: want a warning naming the cluster restore c1, stderr:\n%s", r.stderr)
			}
			want := map[string]string{"commit": "new", "abort": "old"}[decision]
			if got := f.which(t); got != want {
				t.Fatalf("after recover --decision %s DIR holds %s, want %s", decision, got, want)
			}
		})
	}
}

// prepareInChild prepares a restore of backup into db for a cluster
// restore in a child process (this test binary, TestHelperPrepare) that
// then exits without deciding, as a killed agent leaves it.
func prepareInChild(t *testing.T, db, backup string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPrepare$")
	cmd.Env = append(os.Environ(), "KVRFLOW_TEST_PREPARE_DB="+db, "KVRFLOW_TEST_PREPARE_FROM="+backup)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("prepare in a child: %v: %s", err, out)
	}
}

// TestHelperPrepare is prepareInChild's child; it does nothing unless
// KVRFLOW_TEST_PREPARE_DB is set.
func TestHelperPrepare(t *testing.T) {
	db := os.Getenv("KVRFLOW_TEST_PREPARE_DB")
	if db == "" {
		return
	}
	if _, err := kvrflow.Prepare(context.Background(), kvrflow.Options{DB: db, Source: os.Getenv("KVRFLOW_TEST_PREPARE_FROM"), Prepare: "c1"}); err != nil {
		t.Fatal(err)
	}
	os.Exit(0) // holding everything, as a killed agent
}
