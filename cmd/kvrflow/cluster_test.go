package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/etcdproc"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// The end-to-end tests of the cluster restore: Debian's etcd (3.4) in a
// child process (internal/etcdproc), every agent and coordinator a
// kvrflow child process, every node's database and journal in its own
// directory.

// clusterEnv is an etcd for a test and the flags and environment that
// reach it.
type clusterEnv struct {
	etcd *etcdproc.Server
	args []string // the etcd flags of every cluster command
	env  []string // KVRFLOW_ETCD_PASSWORD=..., or set empty
}

// newClusterEnv starts an etcd as o says. With TLS the flags name the CA
// and the client certificate; with auth, the prefix user, its password in
// the environment.
func newClusterEnv(t *testing.T, o etcdproc.Options) *clusterEnv {
	t.Helper()
	s := etcdproc.Start(t, o)
	ce := &clusterEnv{etcd: s, args: []string{"--etcd", s.Endpoint}, env: []string{passwordEnv + "="}}
	if s.Certs != nil {
		ce.args = append(ce.args, "--etcd-cacert", s.Certs.CA, "--etcd-cert", s.Certs.ClientCert, "--etcd-key", s.Certs.ClientKey)
	}
	if s.Password != "" {
		ce.args = append(ce.args, "--etcd-user", etcdproc.User)
		ce.env = []string{passwordEnv + "=" + s.Password}
	}
	return ce
}

// cnode is one node of a test cluster: its database (old: oldKeys keys),
// the backup it is to restore (new), each in its own directory.
type cnode struct {
	id, db, backup string
	old, new       map[string]string
}

// newNodes makes n nodes under root: node i's old database and a backup
// (made with kvrflow.Backup) of another database.
func newNodes(t *testing.T, root string, n int) []*cnode {
	t.Helper()
	var nodes []*cnode
	for i := 1; i <= n; i++ {
		c := &cnode{id: fmt.Sprintf("n%d", i)}
		dir := filepath.Join(root, c.id)
		c.db, c.backup = filepath.Join(dir, "node", "db"), filepath.Join(dir, "backup")
		must(t, os.MkdirAll(filepath.Dir(c.db), 0o755))
		src := filepath.Join(dir, "src")
		c.new = testutil.MakeDB(t, vfs.Default, src, uint64(100+i), 40+i)
		if _, err := kvrflow.Backup(context.Background(), src, c.backup, nil); err != nil {
			t.Fatal(err)
		}
		must(t, os.RemoveAll(src))
		c.old = testutil.MakeDB(t, vfs.Default, c.db, uint64(i), 30+i)
		t.Cleanup(func() { checkJournal(t, c.db) })
		nodes = append(nodes, c)
	}
	return nodes
}

// which says whether the node holds its old database or the new one.
func (c *cnode) which(t *testing.T) string {
	t.Helper()
	got, err := check.Target{DB: c.db, Old: check.Database{Keys: c.old}, New: check.Database{Keys: c.new}}.Which()
	if err != nil {
		t.Fatalf("node %s: %v", c.id, err)
	}
	return string(got)
}

// allHold fails the test unless every node holds want ("old" or "new").
func allHold(t *testing.T, nodes []*cnode, want string) {
	t.Helper()
	for _, c := range nodes {
		if got := c.which(t); got != want {
			t.Errorf("node %s holds the %s database, want %s", c.id, got, want)
		}
	}
}

// writePlan writes the plan of a restore of every node's backup into its
// database, changed by edit if not nil, and returns its path.
func writePlan(t *testing.T, name string, nodes []*cnode, edit func(*cluster.Plan)) string {
	t.Helper()
	p := &cluster.Plan{Name: name}
	for _, c := range nodes {
		p.Nodes = append(p.Nodes, cluster.PlanNode{ID: c.id, DB: c.db, From: c.backup})
	}
	if edit != nil {
		edit(p)
	}
	b, err := json.Marshal(p)
	must(t, err)
	path := filepath.Join(t.TempDir(), name+".json")
	must(t, os.WriteFile(path, b, 0o644))
	return path
}

// child is a kvrflow child process running in the background.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr *bytes.Buffer
	done           chan struct{}
	err            error
}

// startChild starts kvrflow with args and env in the background; the
// test's cleanup kills it if it still runs.
func startChild(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd, stdout, stderr := newCmd(env, args...)
	c := &child{cmd: cmd, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	must(t, cmd.Start())
	go func() { c.err = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the child (at most two minutes, then fails the test) and
// returns how it ended.
func (c *child) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("kvrflow %s did not end within 2 minutes; stderr:\n%s", strings.Join(c.cmd.Args[1:], " "), c.stderr)
	}
	return ended(t, c.cmd, c.stdout, c.stderr, c.err)
}

// kill sends SIGKILL and waits; it reports whether the child was still
// running.
func (c *child) kill() bool {
	select {
	case <-c.done:
		return false
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return true
}

// agent starts node c's agent (--once, --json) in the background.
func (ce *clusterEnv) agent(t *testing.T, c *cnode, extra ...string) *child {
	t.Helper()
	args := append([]string{"cluster", "agent", "--once", "--json", "--node", c.id, "--db", c.db}, ce.args...)
	return startChild(t, ce.env, append(args, extra...)...)
}

// agents starts every node's agent.
func (ce *clusterEnv) agents(t *testing.T, nodes []*cnode) []*child {
	t.Helper()
	var cs []*child
	for _, c := range nodes {
		cs = append(cs, ce.agent(t, c))
	}
	return cs
}

// coordinate runs kvrflow cluster restore of plan (--json) to its end.
func (ce *clusterEnv) coordinate(t *testing.T, plan string, extra ...string) result {
	t.Helper()
	args := append([]string{"cluster", "restore", "--json", "--plan", plan, "--prepare-timeout", "60s"}, ce.args...)
	return startChild(t, ce.env, append(args, extra...)...).wait(t)
}

// statusOf runs kvrflow cluster status --json name and returns the report.
func (ce *clusterEnv) statusOf(t *testing.T, name string) (clusterDoc, result) {
	t.Helper()
	r := cli(t, ce.env, append([]string{"cluster", "status", "--json", name}, ce.args...)...)
	var d clusterDoc
	if r.code == 0 {
		decode(t, r, &d)
	}
	return d, r
}

// clusterDoc is the --json document of cluster restore and status.
type clusterDoc struct {
	cluster.Report
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// agentResult is the --json document of cluster agent --once.
type agentResult struct {
	Node string `json:"node"`
	DB   string `json:"db"`
	cluster.NodeReport
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
}

// waitAgents waits for every agent and fails the test unless each exits
// with want.
func waitAgents(t *testing.T, agents []*child, want int) []agentResult {
	t.Helper()
	var docs []agentResult
	for _, a := range agents {
		r := a.wait(t)
		if r.code != want {
			t.Errorf("agent: want exit %d, got %s", want, r)
			continue
		}
		var d agentResult
		decode(t, r, &d)
		docs = append(docs, d)
	}
	return docs
}

// TestClusterRestore_EveryNodeCommits: with 3 and with 5 nodes, each
// agent a process of its own, the coordinator exits 0, every node holds
// its new database, etcd's decision is commit, and cluster status shows
// every node committed.
func TestClusterRestore_EveryNodeCommits(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			nodes := newNodes(t, t.TempDir(), n)
			name := fmt.Sprintf("happy-%d", n)
			agents := ce.agents(t, nodes)
			r := ce.coordinate(t, writePlan(t, name, nodes, nil))
			if r.code != exitOK {
				t.Fatalf("want exit 0, got %s", r)
			}
			var d clusterDoc
			decode(t, r, &d)
			if d.Decision != "commit" || d.Outcome != cluster.Committed || len(d.Nodes) != n {
				t.Fatalf("report: %+v", d)
			}
			for _, a := range waitAgents(t, agents, exitOK) {
				if a.Outcome != "committed" || a.Vote != "prepared" {
					t.Errorf("agent %s: %+v", a.Node, a)
				}
			}
			allHold(t, nodes, "new")
			s, sr := ce.statusOf(t, name)
			if sr.code != exitOK || s.Decision != "commit" {
				t.Fatalf("status: %s", sr)
			}
			for _, nr := range s.Nodes {
				if nr.Outcome != "committed" {
					t.Errorf("status: node %s outcome %q", nr.ID, nr.Outcome)
				}
			}
			text := cli(t, ce.env, append([]string{"cluster", "status", name}, ce.args...)...)
			if !strings.Contains(text.stdout, "decision commit") {
				t.Errorf("status text:\n%s", text)
			}
		})
	}
}

// TestClusterRestore_CorruptSourceAbortsEveryNode: one node's backup has a
// damaged table: that node votes abort, the coordinator exits 1, and
// every node keeps its old database.
func TestClusterRestore_CorruptSourceAbortsEveryNode(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	nodes := newNodes(t, t.TempDir(), 3)
	corruptTable(t, nodes[1].backup)
	agents := ce.agents(t, nodes)
	r := ce.coordinate(t, writePlan(t, "corrupt", nodes, nil))
	if r.code != exitRolledBack {
		t.Fatalf("want exit 1, got %s", r)
	}
	oneErrorLine(t, r)
	var d clusterDoc
	decode(t, r, &d)
	if d.Decision != "abort" {
		t.Fatalf("decision %q, want abort", d.Decision)
	}
	if v := nodeReport(d.Nodes, "n2"); v.Vote != "abort" || v.Reason == "" {
		t.Errorf("n2: %+v, want an abort vote with its reason", v)
	}
	waitAgents(t, agents, exitRolledBack)
	allHold(t, nodes, "old")
}

// corruptTable flips a byte in the middle of the largest table of the
// backup dir.
func corruptTable(t *testing.T, dir string) {
	t.Helper()
	var biggest string
	var size int64
	entries, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range entries {
		fi, err := e.Info()
		must(t, err)
		if strings.HasSuffix(e.Name(), ".sst") && fi.Size() > size {
			biggest, size = filepath.Join(dir, e.Name()), fi.Size()
		}
	}
	if biggest == "" {
		t.Fatalf("no table in %s", dir)
	}
	b, err := os.ReadFile(biggest)
	must(t, err)
	b[len(b)/2] ^= 0xff
	must(t, os.WriteFile(biggest, b, 0o644))
}

// nodeReport returns the report of node id.
func nodeReport(nodes []cluster.NodeReport, id string) cluster.NodeReport {
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	return cluster.NodeReport{}
}

// oneErrorLine fails the test unless stderr's last line is one "Error: "
// line.
func oneErrorLine(t *testing.T, r result) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "Error: ") {
		t.Errorf("stderr does not end with one Error: line:\n%s", r)
	}
	return last
}

// TestClusterRestore_NodeOutOfSpaceAbortsEveryNode: one node's database is
// on a file system too small for its backup: it votes abort, and every
// node keeps its old database (exit 1).
func TestClusterRestore_NodeOutOfSpaceAbortsEveryNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for one node's database (as fulldisk_test.go does); skipped")
	}
	ce := newClusterEnv(t, etcdproc.Options{})
	root := t.TempDir()
	nodes := newNodes(t, root, 3)
	// n3: a larger backup, its database on a 1 MiB tmpfs.
	n3 := nodes[2]
	makeBigBackup(t, filepath.Join(root, "n3-big"), n3)
	small := filepath.Join(root, "small")
	must(t, os.Mkdir(small, 0o755))
	mountTmpfs(t, small, "1m")
	db := filepath.Join(small, "db")
	must(t, os.CopyFS(db, os.DirFS(n3.db)))
	must(t, os.RemoveAll(n3.db))
	n3.db = db
	t.Cleanup(func() { checkJournal(t, db) })

	agents := ce.agents(t, nodes)
	r := ce.coordinate(t, writePlan(t, "full", nodes, nil))
	if r.code != exitRolledBack {
		t.Fatalf("want exit 1, got %s", r)
	}
	var d clusterDoc
	decode(t, r, &d)
	if v := nodeReport(d.Nodes, "n3"); v.Vote != "abort" || v.Reason == "" {
		t.Errorf("n3: %+v, want an abort vote with its reason", v)
	}
	waitAgents(t, agents, exitRolledBack)
	allHold(t, nodes, "old")
}

// makeBigBackup replaces n's backup with one of a database of about 4 MiB.
func makeBigBackup(t *testing.T, src string, n *cnode) {
	t.Helper()
	n.new = makeBigDB(t, src, 2000, 2048)
	must(t, os.RemoveAll(n.backup))
	if _, err := kvrflow.Backup(context.Background(), src, n.backup, nil); err != nil {
		t.Fatal(err)
	}
	must(t, os.RemoveAll(src))
}

// TestClusterAgent_RefusesAnotherDBOrASourceOutsideAllowFrom: an agent
// votes abort, with the reason, when the plan's db for its node is not
// its --db, or the source is outside every --allow-from prefix; every
// node keeps its old database (exit 1). The agent never restores into the
// plan's path.
func TestClusterAgent_RefusesAnotherDBOrASourceOutsideAllowFrom(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{})
	t.Run("db", func(t *testing.T) {
		root := t.TempDir()
		nodes := newNodes(t, root, 3)
		elsewhere := filepath.Join(root, "elsewhere", "db")
		agents := ce.agents(t, nodes)
		r := ce.coordinate(t, writePlan(t, "other-db", nodes, func(p *cluster.Plan) { p.Nodes[1].DB = elsewhere }))
		if r.code != exitRolledBack {
			t.Fatalf("want exit 1, got %s", r)
		}
		var d clusterDoc
		decode(t, r, &d)
		if v := nodeReport(d.Nodes, "n2"); v.Vote != "abort" || !strings.Contains(v.Reason, elsewhere) {
			t.Errorf("n2: %+v, want an abort vote naming %s", v, elsewhere)
		}
		waitAgents(t, agents, exitRolledBack)
		allHold(t, nodes, "old")
		if _, err := os.Stat(elsewhere); err == nil {
			t.Errorf("the agent made the plan's db %s", elsewhere)
		}
	})
	t.Run("allow-from", func(t *testing.T) {
		root := t.TempDir()
		nodes := newNodes(t, root, 3)
		agents := ce.agents(t, nodes[:2])
		allowed := filepath.Join(root, "allowed") + "/"
		agents = append(agents, ce.agent(t, nodes[2], "--allow-from", allowed))
		r := ce.coordinate(t, writePlan(t, "outside", nodes, nil))
		if r.code != exitRolledBack {
			t.Fatalf("want exit 1, got %s", r)
		}
		var d clusterDoc
		decode(t, r, &d)
		if v := nodeReport(d.Nodes, "n3"); v.Vote != "abort" || !strings.Contains(v.Reason, nodes[2].backup) {
			t.Errorf("n3: %+v, want an abort vote naming the source %s", v, nodes[2].backup)
		}
		waitAgents(t, agents, exitRolledBack)
		allHold(t, nodes, "old")
	})
}

// TestClusterRestore_TLSAndAuth: against an etcd with TLS (client
// certificates required) and password auth, the whole restore works with
// the certificates and the user's password from the environment, or from
// --etcd-password-file. Without the password, or with a wrong one, every
// cluster command fails at once with one error line naming the endpoint
// and etcd's refusal: exit 2 (bad input: nothing was published or
// changed; retrying will not help until the credentials are fixed).
func TestClusterRestore_TLSAndAuth(t *testing.T) {
	ce := newClusterEnv(t, etcdproc.Options{TLS: true, Auth: true})
	nodes := newNodes(t, t.TempDir(), 3)
	agents := ce.agents(t, nodes)
	plan := writePlan(t, "tls-auth", nodes, nil)
	if r := ce.coordinate(t, plan); r.code != exitOK {
		t.Fatalf("want exit 0, got %s", r)
	}
	waitAgents(t, agents, exitOK)
	allHold(t, nodes, "new")

	pwFile := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pwFile, []byte(ce.etcd.Password+"\n"), 0o600))
	fromFile := append(append([]string{}, ce.args...), "--etcd-password-file", pwFile)
	r := cli(t, []string{passwordEnv + "="}, append([]string{"cluster", "status", "tls-auth"}, fromFile...)...)
	if r.code != exitOK || !strings.Contains(r.stdout, "decision commit") {
		t.Errorf("status with --etcd-password-file: %s", r)
	}

	noUser := ce.args[:len(ce.args)-2] // without --etcd-user kvrflow
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"no user, no password", []string{passwordEnv + "="}, noUser},
		{"wrong password", []string{passwordEnv + "=wrong"}, ce.args},
	} {
		for _, cmd := range [][]string{
			{"cluster", "restore", "--plan", plan},
			{"cluster", "status", "tls-auth"},
			{"cluster", "agent", "--once", "--node", "n1", "--db", nodes[0].db},
		} {
			r := startChild(t, c.env, append(cmd, c.args...)...).wait(t)
			if r.code != exitUsage {
				t.Errorf("%s: %s: want exit 2, got %s", c.name, cmd[1], r)
				continue
			}
			line := oneErrorLine(t, r)
			if !strings.Contains(line, ce.etcd.Endpoint) {
				t.Errorf("%s: %s: the error does not name the endpoint %s: %s", c.name, cmd[1], ce.etcd.Endpoint, line)
			}
		}
	}
	allHold(t, nodes, "new")
}

// TestClusterCLI_BadInputExits2WithOneLine: a missing or bad plan, a
// missing --etcd, a certificate without its key, an unreadable password
// file, a user without a password: exit 2, one line naming the flag or
// path and the cause, before etcd is asked anything.
func TestClusterCLI_BadInputExits2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	must(t, os.WriteFile(bad, []byte(`{"name": "x", "nodes": []}`), 0o644))
	good := filepath.Join(dir, "good.json")
	must(t, os.WriteFile(good, []byte(`{"name": "x", "nodes": [{"id": "n1", "from": "/b"}]}`), 0o644))
	env := []string{passwordEnv + "="}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "restore", "--etcd", "127.0.0.1:1", "--plan", filepath.Join(dir, "nope.json")}, "nope.json"},
		{[]string{"cluster", "restore", "--etcd", "127.0.0.1:1", "--plan", bad}, "no nodes"},
		{[]string{"cluster", "restore", "--plan", good}, "--etcd is required"},
		{[]string{"cluster", "restore", "--etcd", "127.0.0.1:1", "--plan", good, "--etcd-cert", "c.pem"}, "--etcd-key"},
		{[]string{"cluster", "status", "--etcd", "127.0.0.1:1", "--etcd-cacert", filepath.Join(dir, "ca.pem")}, "ca.pem"},
		{[]string{"cluster", "status", "--etcd", "127.0.0.1:1", "--etcd-user", "u", "--etcd-password-file", filepath.Join(dir, "pw")}, "pw"},
		{[]string{"cluster", "status", "--etcd", "127.0.0.1:1", "--etcd-user", "u"}, passwordEnv},
		{[]string{"cluster", "status", "--etcd", "127.0.0.1:1", "--etcd-prefix", "kvrflow"}, "--etcd-prefix"},
		{[]string{"cluster", "agent", "--etcd", "127.0.0.1:1", "--node", "n1"}, "--db is required"},
		{[]string{"cluster", "restore", "--etcd", "127.0.0.1:1", "--plan", good, "--etcd-password", "x"}, "--etcd-password"},
	} {
		r := mustRun(t, exitUsage, env, c.args...)
		if line := oneErrorLine(t, r); !strings.Contains(line, c.want) {
			t.Errorf("kvrflow %s: the error does not name %q: %s", strings.Join(c.args, " "), c.want, line)
		}
	}
}

// TestCompletion_CoversTheClusterCommands: the shell completion offers
// the cluster group, its subcommands and their flags.
func TestCompletion_CoversTheClusterCommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "clu"}, []string{"cluster"}},
		{[]string{"__complete", "cluster", ""}, []string{"restore", "agent", "status"}},
		{[]string{"__complete", "cluster", "agent", "--"}, []string{"--etcd", "--node", "--allow-from", "--once", "--etcd-cacert", "--etcd-password-file"}},
		{[]string{"__complete", "cluster", "restore", "--"}, []string{"--plan", "--prepare-timeout", "--etcd-user"}},
		{[]string{"__complete", "chaos", "--"}, []string{"--cluster", "--etcd"}},
	} {
		r := mustRun(t, exitOK, nil, c.args...)
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w+"\t") && !strings.Contains(r.stdout, w+"\n") {
				t.Errorf("kvrflow %s offers no %s:\n%s", strings.Join(c.args, " "), w, r.stdout)
			}
		}
	}
}
