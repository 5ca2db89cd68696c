package clusterchaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/cluster"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/sampledb"
)

// ErrSetup is returned by New when the clean cluster restore it measures
// does not commit on every node.
var ErrSetup = errors.New("cluster chaos: setup failed")

// etcd's decisions, as cluster.Report names them.
const (
	decisionCommit = "commit"
	decisionAbort  = "abort"
)

// Config says what the harness runs.
type Config struct {
	// Self is the kvrflow binary the agents and coordinators run in.
	Self string
	// Scratch is the directory to work in: new or empty.
	Scratch string
	// Nodes is how many nodes (at least 1).
	Nodes int
	// EtcdArgs are the etcd flags every child gets (--etcd ENDPOINTS and
	// any of --etcd-cacert, --etcd-user, --etcd-prefix ...), and Env the
	// environment variables added to the children's
	// (KVRFLOW_ETCD_PASSWORD=...).
	EtcdArgs, Env []string
	// Seed seeds the choice of victims and delays.
	Seed uint64
	// PrepareTimeout is the coordinators' --prepare-timeout (default 30 s).
	PrepareTimeout time.Duration
	// Output receives every child's output, headed by its command line
	// (nil: discarded).
	Output io.Writer
}

// Node is one node of the harness.
type Node struct {
	ID, DB, Backup string
	pristine       string
	old, new       map[string]string // digests (check.Digest)
}

// Harness is what the iterations share.
type Harness struct {
	cfg      Config
	rng      *rand.Rand
	nodes    []*Node
	timerMax time.Duration // how long a clean cluster restore takes
	// runID tells this harness's restore names from those of another run
	// with the same seed against the same etcd.
	runID string

	outMu sync.Mutex
}

// The sample databases of node i: the old one and the backup's source.
func sampleOld(i int) sampledb.Spec {
	return sampledb.Spec{Seed: uint64(100 + i), Keys: 600, ValueSize: 128, Flushes: 2}
}

func sampleNew(i int) sampledb.Spec {
	return sampledb.Spec{Seed: uint64(200 + i), Keys: 900, ValueSize: 128, Flushes: 2}
}

// New makes the nodes (old databases and backups) in cfg.Scratch and runs
// one clean cluster restore: it must commit on every node; its duration
// bounds the kill moments, its result is each node's new database.
func New(ctx context.Context, cfg Config) (*Harness, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("%w: want at least 1 node", ErrSetup)
	}
	if cfg.PrepareTimeout <= 0 {
		cfg.PrepareTimeout = 30 * time.Second
	}
	h := &Harness{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x636c)), runID: strconv.FormatInt(time.Now().UnixNano(), 36)}
	for i := 1; i <= cfg.Nodes; i++ {
		n := &Node{ID: fmt.Sprintf("n%d", i)}
		dir := filepath.Join(cfg.Scratch, "nodes", n.ID)
		n.DB = filepath.Join(dir, "db")
		n.pristine = filepath.Join(cfg.Scratch, "pristine", n.ID)
		n.Backup = filepath.Join(cfg.Scratch, "backups", n.ID)
		src := filepath.Join(cfg.Scratch, "backups", n.ID+"-src")
		for _, d := range []string{dir, filepath.Dir(n.pristine), filepath.Dir(n.Backup)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("cluster chaos: %w", err)
			}
		}
		if err := sampledb.Make(nil, n.pristine, sampleOld(i)); err != nil {
			return nil, fmt.Errorf("cluster chaos: %w", err)
		}
		if err := sampledb.Make(nil, src, sampleNew(i)); err != nil {
			return nil, fmt.Errorf("cluster chaos: %w", err)
		}
		if _, err := kvrflow.Backup(ctx, src, n.Backup, nil); err != nil {
			return nil, fmt.Errorf("cluster chaos: back up %s: %w", src, err)
		}
		if err := os.RemoveAll(src); err != nil {
			return nil, fmt.Errorf("cluster chaos: %w", err)
		}
		var err error
		if n.old, err = check.Digest(nil, n.pristine); err != nil {
			return nil, fmt.Errorf("cluster chaos: %w", err)
		}
		h.nodes = append(h.nodes, n)
	}
	// The clean run: every node must commit.
	start := time.Now()
	it, err := h.run(ctx, 0, victim{})
	if err != nil {
		return nil, err
	}
	if it.Decision != decisionCommit || it.CoordinatorExit != 0 {
		return nil, fmt.Errorf("%w: a clean cluster restore did not commit: decision %q, coordinator exit %d; see the children's output",
			ErrSetup, it.Decision, it.CoordinatorExit)
	}
	h.timerMax = max(time.Since(start), 100*time.Millisecond)
	for _, n := range h.nodes {
		if n.new, err = check.Digest(nil, n.DB); err != nil {
			return nil, fmt.Errorf("cluster chaos: %w", err)
		}
		if check.Equal(n.new, n.old) {
			return nil, fmt.Errorf("%w: node %s: the new database equals the old one", ErrSetup, n.ID)
		}
	}
	return h, nil
}

// Nodes returns the harness's nodes.
func (h *Harness) Nodes() []*Node { return h.nodes }

// Iteration is how one iteration went.
type Iteration struct {
	N int `json:"n"`
	// Kill says whom the iteration killed and when: "agent n2 at 312ms",
	// "agent n2 at 312ms and again at 40ms into its recovery",
	// "coordinator at 80ms".
	Kill string `json:"kill"`
	// Killed is false when the victim had ended before the kill.
	Killed bool `json:"killed"`
	// Decision is etcd's: commit or abort ("" if none).
	Decision string `json:"decision"`
	// CoordinatorExit is the (last) coordinator's exit code, -1 if it was
	// killed and not run again.
	CoordinatorExit int `json:"coordinator_exit"`
	// Result is what the nodes hold: "all-old", "all-new" or "mixed".
	Result string `json:"result"`
	// Failure says how the invariant failed; "" if it held.
	Failure string `json:"failure,omitempty"`
}

// victim is whom an iteration kills: an agent (node index) or the
// coordinator, after delay; twice: again during the agent's recovery.
type victim struct {
	kill        bool
	coordinator bool
	node        int
	delay       time.Duration
	twice       time.Duration // >0: kill the restarted agent after this
}

// Iteration runs one killed cluster restore and checks the invariant.
// An invariant failure is in the Iteration's Failure; err is a failure of
// the harness itself.
func (h *Harness) Iteration(ctx context.Context, n int) (Iteration, error) {
	v := victim{kill: true, delay: time.Duration(h.rng.Int64N(int64(h.timerMax)))}
	switch r := h.rng.IntN(8); {
	case r == 0:
		v.coordinator = true
	default:
		v.node = h.rng.IntN(len(h.nodes))
		if r == 1 {
			v.twice = time.Duration(h.rng.Int64N(int64(h.timerMax / 2)))
		}
	}
	return h.run(ctx, n, v)
}

// proc is a running child.
type proc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	code int // exit code, -1 if killed by a signal
}

func (h *Harness) start(ctx context.Context, args ...string) (*proc, error) {
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, h.cfg.Self, append(args, h.cfg.EtcdArgs...)...)
	p.cmd.Env = append(os.Environ(), h.cfg.Env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("cluster chaos: start %s: %w", h.cfg.Self, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -2
		}
		h.record(p)
		close(p.done)
	}()
	return p, nil
}

// record writes a finished child's output to Config.Output.
func (h *Harness) record(p *proc) {
	if h.cfg.Output == nil {
		return
	}
	h.outMu.Lock()
	defer h.outMu.Unlock()
	fmt.Fprintf(h.cfg.Output, "== %v: exit %d\n%s\n", p.cmd.Args, p.code, p.out.Bytes())
}

// wait waits for p to end, at most d; then it kills it and says so.
func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%v did not end within %v: killed", p.cmd.Args[1:4], d)
	}
}

// kill sends SIGKILL to p and waits; it reports whether p was still
// running (whether the kill, not the child's own end, ended it).
func (p *proc) kill() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return p.code == -1
}

func (h *Harness) agent(ctx context.Context, n *Node) (*proc, error) {
	return h.start(ctx, "cluster", "agent", "--once", "--node", n.ID, "--db", n.DB, "--log-format", "json")
}

// run resets the nodes and runs one cluster restore, killing v.
func (h *Harness) run(ctx context.Context, iter int, v victim) (Iteration, error) {
	it := Iteration{N: iter, CoordinatorExit: -1}
	name := fmt.Sprintf("chaos-%d-%s-%d", h.cfg.Seed, h.runID, iter)
	if err := h.reset(); err != nil {
		return it, err
	}
	plan, err := h.writePlan(name)
	if err != nil {
		return it, err
	}
	limit := h.cfg.PrepareTimeout + 2*time.Minute
	agents := make([]*proc, len(h.nodes))
	for i, n := range h.nodes {
		if agents[i], err = h.agent(ctx, n); err != nil {
			return it, err
		}
	}
	coordinate := func() (*proc, error) {
		return h.start(ctx, "cluster", "restore", "--plan", plan, "--json", "--prepare-timeout", h.cfg.PrepareTimeout.String())
	}
	coord, err := coordinate()
	if err != nil {
		return it, err
	}
	if v.kill {
		time.Sleep(v.delay)
		if v.coordinator {
			it.Kill = fmt.Sprintf("coordinator at %v", v.delay.Round(time.Millisecond))
			it.Killed = coord.kill()
			if it.Killed && !h.published(ctx, name) {
				if coord, err = coordinate(); err != nil { // killed before it published: again
					return it, err
				}
				it.Kill += " (before it published; run again)"
			} else if it.Killed {
				coord = nil
			}
		} else {
			n := h.nodes[v.node]
			it.Kill = fmt.Sprintf("agent %s at %v", n.ID, v.delay.Round(time.Millisecond))
			it.Killed = agents[v.node].kill()
			if it.Killed {
				// An agent killed after it recorded its outcome is done:
				// run again with --once it would wait for the next
				// restore (cluster.Agent's contract).
				if v.twice > 0 && !h.recorded(ctx, name, n.ID) {
					p, err := h.agent(ctx, n)
					if err != nil {
						return it, err
					}
					time.Sleep(v.twice)
					if p.kill() {
						it.Kill += fmt.Sprintf(" and again at %v into its recovery", v.twice.Round(time.Millisecond))
					}
				}
				if h.recorded(ctx, name, n.ID) {
					agents[v.node] = nil
					it.Kill += " (after it recorded its outcome)"
				} else if agents[v.node], err = h.agent(ctx, n); err != nil {
					return it, err
				}
			}
		}
	}
	var failures []string
	for i, p := range agents {
		if p == nil {
			continue
		}
		if err := h.finishAgent(ctx, h.nodes[i], p, limit); err != nil {
			failures = append(failures, err.Error())
		}
	}
	// An agent that could not record its outcome (etcd away at that
	// moment) ended without it; run again, it records what its journal
	// holds (cluster status advises the same).
	if rep, err := h.status(ctx, name); err == nil && rep.Decision != "" {
		for i, n := range h.nodes {
			for _, nr := range rep.Nodes {
				if nr.ID == n.ID && nr.Outcome == "" {
					p, err := h.agent(ctx, n)
					if err != nil {
						return it, err
					}
					if err := h.finishAgent(ctx, h.nodes[i], p, limit); err != nil {
						failures = append(failures, err.Error())
					}
				}
			}
		}
	}
	if coord != nil {
		if err := coord.wait(limit); err != nil {
			failures = append(failures, err.Error())
		}
		it.CoordinatorExit = coord.code
	}
	rep, err := h.status(ctx, name)
	if err != nil {
		failures = append(failures, err.Error())
	} else {
		it.Decision = rep.Decision
	}
	it.Result, err = h.judge()
	if err != nil {
		return it, err
	}
	failures = append(failures, h.expect(it)...)
	for _, n := range h.nodes {
		j := filepath.Join(n.DB+".kvrflow", "journal.db")
		if _, err := os.Stat(j); err != nil {
			continue // no run began on this node (the decision came first): nothing in flight
		}
		if err := check.Journal(j); err != nil {
			failures = append(failures, fmt.Sprintf("node %s: %v", n.ID, err))
		}
	}
	if len(failures) > 0 {
		it.Failure = fmt.Sprint(failures)
	}
	return it, nil
}

// finishAgent waits for an agent; one that exits 5 (undecided: etcd did
// not answer) is run again, a few times.
func (h *Harness) finishAgent(ctx context.Context, n *Node, p *proc, limit time.Duration) error {
	for try := 0; ; try++ {
		if err := p.wait(limit); err != nil {
			return fmt.Errorf("node %s: %w", n.ID, err)
		}
		if p.code == 0 || p.code == 1 || try == 5 {
			return nil
		}
		var err error
		if p, err = h.agent(ctx, n); err != nil {
			return err
		}
	}
}

// expect checks an iteration's result against etcd's decision and the
// coordinator's exit code.
func (h *Harness) expect(it Iteration) []string {
	var f []string
	switch {
	case it.Result == "mixed":
		f = append(f, "mixed: some nodes hold the new database, some the old")
	case it.Decision == decisionCommit && it.Result != "all-new":
		f = append(f, "etcd decided commit but the nodes hold "+it.Result)
	case it.Decision != decisionCommit && it.Result != "all-old":
		f = append(f, fmt.Sprintf("etcd's decision is %q but the nodes hold %s", it.Decision, it.Result))
	}
	want := map[string]int{decisionCommit: 0, decisionAbort: 1}[it.Decision]
	if it.CoordinatorExit >= 0 && it.Decision != "" && it.CoordinatorExit != want {
		f = append(f, fmt.Sprintf("etcd decided %s but the coordinator exited %d", it.Decision, it.CoordinatorExit))
	}
	return f
}

// judge says what the nodes hold: all-old, all-new or mixed. A node
// that holds neither is a harness error naming it.
func (h *Harness) judge() (string, error) {
	var olds, news int
	for _, n := range h.nodes {
		t := check.Target{DB: n.DB, Old: check.Database{Files: n.old}, New: check.Database{Files: n.new}}
		if n.new == nil { // the clean run: new is whatever it is, if not old
			got, err := check.Digest(nil, n.DB)
			if err != nil {
				return "", fmt.Errorf("node %s: %w", n.ID, err)
			}
			if check.Equal(got, n.old) {
				olds++
			} else {
				news++
			}
			continue
		}
		w, err := t.Which()
		if err != nil {
			return "", fmt.Errorf("node %s: %w", n.ID, err)
		}
		if w == check.Old {
			olds++
		} else {
			news++
		}
	}
	switch {
	case news == 0:
		return "all-old", nil
	case olds == 0:
		return "all-new", nil
	}
	return "mixed", nil
}

// reset puts every node's old database back and removes kvrflow's
// directory beside it.
func (h *Harness) reset() error {
	for _, n := range h.nodes {
		for _, d := range []string{n.DB, n.DB + ".kvrflow"} {
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("cluster chaos: reset: %w", err)
			}
		}
		if err := os.CopyFS(n.DB, os.DirFS(n.pristine)); err != nil {
			return fmt.Errorf("cluster chaos: reset: %w", err)
		}
	}
	return nil
}

// writePlan writes the plan of a restore of every node's backup.
func (h *Harness) writePlan(name string) (string, error) {
	p := cluster.Plan{Name: name}
	for _, n := range h.nodes {
		p.Nodes = append(p.Nodes, cluster.PlanNode{ID: n.ID, DB: n.DB, From: n.Backup})
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(h.cfg.Scratch, "plans")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cluster chaos: %w", err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("cluster chaos: %w", err)
	}
	return path, nil
}

// recorded reports whether node id's outcome of the restore name is in
// etcd (false also when etcd does not answer: the agent is run again,
// and says what it finds).
func (h *Harness) recorded(ctx context.Context, name, id string) bool {
	rep, err := h.status(ctx, name)
	if err != nil {
		return false
	}
	for _, n := range rep.Nodes {
		if n.ID == id {
			return n.Outcome != ""
		}
	}
	return false
}

// published reports whether etcd knows the restore name.
func (h *Harness) published(ctx context.Context, name string) bool {
	_, err := h.status(ctx, name)
	return err == nil
}

// status reads the restore's report with kvrflow cluster status --json.
func (h *Harness) status(ctx context.Context, name string) (*cluster.Report, error) {
	p, err := h.start(ctx, "cluster", "status", "--json", name)
	if err != nil {
		return nil, err
	}
	if err := p.wait(time.Minute); err != nil {
		return nil, err
	}
	if p.code != 0 {
		return nil, fmt.Errorf("cluster status %s: exit %d: %s", name, p.code, bytes.TrimSpace(p.out.Bytes()))
	}
	var rep cluster.Report
	// stdout and stderr share the buffer: the document is its first JSON
	// object.
	dec := json.NewDecoder(bytes.NewReader(jsonStart(p.out.Bytes())))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("cluster status %s: %w: %s", name, err, p.out.Bytes())
	}
	return &rep, nil
}

// jsonStart returns b from its first line that opens a JSON object.
func jsonStart(b []byte) []byte {
	if bytes.HasPrefix(b, []byte("{\n")) {
		return b
	}
	if i := bytes.Index(b, []byte("\n{\n")); i >= 0 {
		return b[i+1:]
	}
	return b
}

// Summary counts iterations; its JSON is kvrflow chaos --cluster's
// document's.
type Summary struct {
	Nodes          int         `json:"nodes"`
	Iterations     int         `json:"iterations"`
	Killed         int         `json:"killed"` // the victim was still running
	AllOld         int         `json:"all_old"`
	AllNew         int         `json:"all_new"`
	Mixed          int         `json:"mixed"`
	Committed      int         `json:"committed"`
	Aborted        int         `json:"aborted"`
	Failures       int         `json:"invariant_failures"`
	FailureDetails []string    `json:"failure_details,omitempty"`
	Log            []Iteration `json:"iterations_log"`
}

// Add counts it.
func (s *Summary) Add(it Iteration) {
	s.Iterations++
	s.Log = append(s.Log, it)
	if it.Killed {
		s.Killed++
	}
	switch it.Result {
	case "all-old":
		s.AllOld++
	case "all-new":
		s.AllNew++
	default:
		s.Mixed++
	}
	switch it.Decision {
	case decisionCommit:
		s.Committed++
	case decisionAbort:
		s.Aborted++
	}
	if it.Failure != "" {
		s.Failures++
		s.FailureDetails = append(s.FailureDetails, "iteration "+strconv.Itoa(it.N)+" ("+it.Kill+"): "+it.Failure)
	}
}
