// Command cluster measures the cluster restore protocol's own cost
// (issue 14): for N local nodes (default 3 and 10) it times, interleaved
// in an order rotated from round to round,
// one warm-up round (not counted) and -runs rounds of
//
//	I  N `kvrflow restore` processes started at once, one per node, each
//	   restoring its node's backup: the independent restores;
//	C  the same N restores as a cluster restore: N `kvrflow cluster agent
//	   --once` processes and one `kvrflow cluster restore` started at once,
//	   against a real etcd (Debian's etcd-server, started by the command on
//	   a free loopback port with its own data directory);
//	S  the same, with the agents already running, as services run them:
//	   they are started one second before, and the time runs from starting
//	   `kvrflow cluster restore` until it and every agent have exited;
//
//	W  the same N restores run independently by N processes already
//	   running (this program, as workers: each calls kvrflow.Restore with
//	   the CLI's defaults once told to start): I without the N process
//	   starts, which S does not pay either (its agents are running);
//
// each from the same starting state (every node's old database put back,
// kvrflow's directories removed, sync). The wall time runs from the start
// of the processes until the last has exited. The protocol's cost is
// C - I, and S - W with the agents running (S - I also counts the N
// process starts S does not make); in S it also reads the agents'
// JSON logs for the protocol's own wait once every node is ready: from
// the last node's "prepared; voting" to the first "decided" (the vote's
// write, the decision's transaction, the watch that brings it). The target is at most 50 ms plus one etcd round trip per phase
// (two phases: prepare/vote and decide/commit), the round trip being the
// median latency of a Put measured on the same etcd.
//
// Usage: go run ./bench/cluster [-runs 7] [-nodes 3,10] [-keys 4000] [-tags TAGS] [-ops IWCS] [-base REV] [-out bench/RESULTS-cluster.md]
//
// It builds kvrflow from the working tree into the work directory
// (-dir, default a temporary directory, removed afterwards) and writes a
// Markdown report with the command, the machine and the medians to -out.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/etcdproc"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/steps"
	"github.com/rs/zerolog"
)

type node struct{ id, db, pristine, backup string }

func main() {
	runs := flag.Int("runs", 7, "timed rounds per operation")
	nodesFlag := flag.String("nodes", "3,10", "comma-separated numbers of nodes")
	keys := flag.Int("keys", 4000, "keys of 1 KiB in each node's backup")
	out := flag.String("out", "bench/RESULTS-cluster.md", "where to write the report")
	dir := flag.String("dir", "", "work directory (default a temporary one, removed)")
	worker := flag.Bool("worker", false, "run as a W worker: -worker SRC DB (the benchmark starts these itself)")
	tags := flag.String("tags", "", "build tags for kvrflow's build (go build -tags)")
	base := flag.String("base", "", "also time S with kvrflow built at git revision `REV` (op B, in the rotation), for an A/B of a change in one run")
	only := flag.String("ops", "IWCS", "which operations to time (a subset of IWCS; the others report 0), e.g. -ops S under perf record")
	cpuRounds := flag.Int("cpu", 0, "instead of the benchmark: this many S and W rounds of each -nodes count, alternating, and the CPU time each kind of process used in the timed window (medians)")
	trace := flag.Int("trace", 0, "instead of the benchmark: one S round of this many nodes, its processes' log lines on one time line")
	cold := flag.Bool("cold", false, "with -trace: a C round (agents started with the coordinator) instead of S")
	flag.Parse()
	if *worker {
		runWorker(flag.Arg(0), flag.Arg(1))
		return
	}
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "kvrflow-bench-cluster-")
		check(err)
		defer os.RemoveAll(d)
		work = d
	}
	bin := filepath.Join(work, "kvrflow")
	build := exec.Command("go", "build", "-tags", *tags, "-o", bin, "./cmd/kvrflow")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run())
	baseBin := ""
	if *base != "" {
		baseBin = buildAt(*base, *tags, work)
		*only += "B"
	}

	etcd, err := etcdproc.Launch(etcdproc.Options{Dir: filepath.Join(work, "etcd"), DefaultTiming: true})
	check(err)
	defer etcd.Cleanup()
	rtt := putLatency(etcd)
	if *trace > 0 {
		nodes := makeNodes(filepath.Join(work, "trace"), *trace, *keys)
		for r := 0; r < 2; r++ { // the first round warms the caches
			traced(bin, etcd.Endpoint, nodes, fmt.Sprintf("trace-%d-%d", r, time.Now().UnixNano()), work, r == 1, *cold)
		}
		return
	}

	if *cpuRounds > 0 {
		for _, f := range strings.Split(*nodesFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			check(err)
			nodes := makeNodes(filepath.Join(work, fmt.Sprintf("c%d", n)), n, *keys)
			cpuWindow(bin, etcd, nodes, work, *cpuRounds)
		}
		return
	}

	var report strings.Builder
	fmt.Fprintf(&report, "# Cluster restore: the protocol's own cost\n\nMade by `bench/cluster` (see the comment at its top).\n\n")
	fmt.Fprintf(&report, "- command: `go run ./bench/cluster %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&report, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&report, "- kvrflow commit: %s (%s), built with tags %q\n", gitRev(), runtime.Version(), *tags)
	fmt.Fprintf(&report, "- machine: %d cores, %s\n", runtime.NumCPU(), kernel())
	fmt.Fprintf(&report, "- etcd: %s, one member on 127.0.0.1, its default heartbeat and election timeouts (100 ms, 1 s), data on the work directory's file system; Put round trip (median of 200): %.2f ms\n", etcdVersion(), ms(rtt))
	fmt.Fprintf(&report, "- each node: an old database of 1000 keys, a backup (kvrflow backup) of %d keys of 1 KiB; restores in the default mode (auto: link on the same file system) and verification (checksum)\n", *keys)
	fmt.Fprintf(&report, "- %d rounds each after one warm-up round, interleaved in a rotated order (I W C S, W C S I, C S I W, ...); wall time from starting the processes to the last exit\n", *runs)
	fmt.Fprintf(&report, "- load average at the start (other work on this machine): %s\n\n", loadavg())
	fmt.Fprintf(&report, "| nodes | I: independent restores, median ms | W: independent restores, processes running, median ms | C: cluster restore, agents started with it, median ms | S: cluster restore, agents running, median ms | C − I ms | S − W ms | S − I ms | C − I, median of the rounds' differences ms | S − W, median of the rounds' differences ms | last vote → decision (S), median ms | decision → last node done (S), median ms | target ms (50 + 2 round trips) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var runsTable, abLines strings.Builder

	for _, f := range strings.Split(*nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		check(err)
		nodes := makeNodes(filepath.Join(work, fmt.Sprintf("n%d", n)), n, *keys)
		var ind, wrk, clu, svc, vd, cd, bs []time.Duration
		for r := 0; r <= *runs; r++ {
			// The four in a rotated order, round after round: what runs
			// first after a reset is not always the same (the order
			// alone moved one operation's median by 10 ms here).
			var a, w, b, c, v, dc, bb time.Duration
			ops := []func(){
				func() { a = independent(bin, nodes) },
				func() { w = workers(nodes) },
				func() {
					b, _, _ = clustered(bin, etcd.Endpoint, nodes, fmt.Sprintf("bench-%d-%d-%d", n, r, time.Now().UnixNano()), work, false)
				},
				func() {
					c, v, dc = clustered(bin, etcd.Endpoint, nodes, fmt.Sprintf("bench-s-%d-%d-%d", n, r, time.Now().UnixNano()), work, true)
				},
				func() {
					bb, _, _ = clustered(baseBin, etcd.Endpoint, nodes, fmt.Sprintf("bench-b-%d-%d-%d", n, r, time.Now().UnixNano()), work, true)
				},
			}
			for j := range ops {
				if k := (j + r) % len(ops); strings.ContainsRune(*only, rune("IWCSB"[k])) {
					ops[k]()
				}
			}
			if r > 0 {
				ind, wrk, clu, svc, vd, cd = append(ind, a), append(wrk, w), append(clu, b), append(svc, c), append(vd, v), append(cd, dc)
				bs = append(bs, bb)
			}
			log.Printf("nodes %d round %d: independent %.1f ms, running %.1f ms, cluster %.1f ms, agents running %.1f ms", n, r, ms(a), ms(w), ms(b), ms(c))
		}
		mi, mw, mc, msv := median(ind), median(wrk), median(clu), median(svc)
		// Each round's I, W, C and S run one after the other: the
		// median of the rounds' differences is not moved by what
		// drifts over the run (the machine's other work, its caches).
		var dci, dsw []time.Duration
		for i := range ind {
			dci, dsw = append(dci, clu[i]-ind[i]), append(dsw, svc[i]-wrk[i])
		}
		fmt.Fprintf(&report, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.1f |\n", n, ms(mi), ms(mw), ms(mc), ms(msv), ms(mc-mi), ms(msv-mw), ms(msv-mi),
			ms(median(dci)), ms(median(dsw)), ms(median(vd)), ms(median(cd)), 50+2*ms(rtt))
		fmt.Fprintf(&runsTable, "| %d | %s | %s | %s | %s | %s | %s |\n", n, list(ind), list(wrk), list(clu), list(svc), list(vd), list(cd))
		if baseBin != "" {
			var dbw, dsb []time.Duration
			for i := range bs {
				dbw, dsb = append(dbw, bs[i]-wrk[i]), append(dsb, svc[i]-bs[i])
			}
			fmt.Fprintf(&abLines, "- %d nodes: B (S with %s's kvrflow) median %.1f ms; B − W %.1f ms (median of the rounds' differences %.1f); S − B, median of the rounds' differences %.1f ms; B every run: %s\n",
				n, *base, ms(median(bs)), ms(median(bs)-mw), ms(median(dbw)), ms(median(dsb)), list(bs))
		}
		check(os.RemoveAll(filepath.Join(work, fmt.Sprintf("n%d", n))))
	}
	if abLines.Len() > 0 {
		fmt.Fprintf(&report, "\nA/B, op B in the same rotation:\n\n%s", abLines.String())
	}
	fmt.Fprintf(&report, "\nEvery run (ms):\n\n| nodes | I | W | C | S | last vote → decision | decision → last node done |\n|---:|---|---|---|---|---|---|\n%s", runsTable.String())
	fmt.Print(report.String())
	check(os.WriteFile(*out, []byte(report.String()), 0o644))
}

// makeNodes makes n nodes under dir: each an old database (kept as
// pristine) and a backup.
func makeNodes(dir string, n, keys int) []node {
	var nodes []node
	for i := 1; i <= n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("n%d", i))
		nd := node{id: fmt.Sprintf("n%d", i), db: filepath.Join(d, "node", "db"), pristine: filepath.Join(d, "pristine"), backup: filepath.Join(d, "backup")}
		check(os.MkdirAll(filepath.Dir(nd.db), 0o755))
		check(sampledb.Make(nil, nd.pristine, sampledb.Spec{Seed: uint64(i), Keys: 1000, ValueSize: 1024, Flushes: 2}))
		src := filepath.Join(d, "src")
		check(sampledb.Make(nil, src, sampledb.Spec{Seed: uint64(1000 + i), Keys: keys, ValueSize: 1024, Flushes: 4}))
		_, err := kvrflow.Backup(context.Background(), src, nd.backup, nil)
		check(err)
		check(os.RemoveAll(src))
		nodes = append(nodes, nd)
	}
	return nodes
}

// reset puts every node's old database back and syncs.
func reset(nodes []node) {
	for _, nd := range nodes {
		check(os.RemoveAll(nd.db))
		check(os.RemoveAll(nd.db + ".kvrflow"))
		check(os.CopyFS(nd.db, os.DirFS(nd.pristine)))
	}
	check(exec.Command("sync").Run())
}

// independent times N kvrflow restore processes started at once.
func independent(bin string, nodes []node) time.Duration {
	reset(nodes)
	var cmds []*exec.Cmd
	for _, nd := range nodes {
		cmds = append(cmds, exec.Command(bin, "restore", "--from", nd.backup, "--db", nd.db, "--log-level", "warn"))
	}
	return timeAll(cmds)
}

// workers times the same restores run by N processes already running:
// each started, ready (its runtime and packages initialised), then told
// to restore; the time runs from telling them until the last has exited.
func workers(nodes []node) time.Duration { return workersWith(nodes, nil) }

// workersWith is workers, calling ready (if not nil) with the workers
// once all are ready, before they are told to go.
func workersWith(nodes []node, ready func([]*exec.Cmd)) time.Duration {
	reset(nodes)
	self, err := os.Executable()
	check(err)
	var wg sync.WaitGroup
	var cmds []*exec.Cmd
	var gos []io.WriteCloser
	errs := make([]error, len(nodes))
	outs := make([]*strings.Builder, len(nodes))
	for i, nd := range nodes {
		c := exec.Command(self, "-worker", nd.backup, nd.db)
		in, err := c.StdinPipe()
		check(err)
		out, err := c.StdoutPipe()
		check(err)
		outs[i] = &strings.Builder{}
		c.Stderr = outs[i]
		check(c.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			log.Fatalf("worker %s: %q %v", nd.id, line, err)
		}
		cmds, gos = append(cmds, c), append(gos, in)
	}
	if ready != nil {
		ready(cmds)
	}
	start := time.Now()
	for _, in := range gos {
		_, err := io.WriteString(in, "go\n")
		check(err)
	}
	for i, c := range cmds {
		wg.Go(func() { errs[i] = c.Wait() })
	}
	wg.Wait()
	d := time.Since(start)
	for i, err := range errs {
		if err != nil {
			log.Fatalf("worker %s: %v: %s", nodes[i].id, err, outs[i])
		}
	}
	return d
}

// runWorker is a W worker: ready, then one restore of src into db, as
// `kvrflow restore --from src --db db` does it with its defaults.
func runWorker(src, db string) {
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		log.Fatal(err)
	}
	l := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	_, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: db, Source: src, Mode: steps.ModeAuto,
		Engine: steps.EngineAuto, Verify: steps.VerifyChecksum, Log: &l})
	check(err)
}

// writePlan writes the plan of a cluster restore name of nodes into work
// and returns its path.
func writePlan(nodes []node, name, work string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"name": %q, "nodes": [`, name)
	for i, nd := range nodes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"id": %q, "db": %q, "from": %q}`, nd.id, nd.db, nd.backup)
	}
	b.WriteString("]}")
	plan := filepath.Join(work, name+".json")
	check(os.WriteFile(plan, []byte(b.String()), 0o644))
	return plan
}

// clustered times the same restores as a cluster restore; running: the
// agents are started a second before the coordinator, and the time runs
// from the coordinator's start.
func clustered(bin, endpoint string, nodes []node, name, work string, running bool) (time.Duration, time.Duration, time.Duration) {
	reset(nodes)
	plan := writePlan(nodes, name, work)
	defer os.Remove(plan)
	var cmds []*exec.Cmd
	for _, nd := range nodes {
		cmds = append(cmds, exec.Command(bin, "cluster", "agent", "--once", "--etcd", endpoint, "--node", nd.id, "--db", nd.db, "--log-level", "warn"))
	}
	coord := exec.Command(bin, "cluster", "restore", "--etcd", endpoint, "--plan", plan, "--log-level", "warn")
	if !running {
		return timeAll(append(cmds, coord)), 0, 0
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	logs := make([]*strings.Builder, len(cmds))
	for i, c := range cmds {
		// Info logs as JSON, for the vote-to-decision time.
		c.Args = append(c.Args[:len(c.Args)-2], "--log-level", "info", "--log-format", "json")
		logs[i] = &strings.Builder{}
		c.Stderr = logs[i]
		check(c.Start())
		wg.Go(func() { errs[i] = c.Wait() })
	}
	time.Sleep(time.Second)
	var out strings.Builder
	coord.Stderr = &out
	start := time.Now()
	check(coord.Start())
	if err := coord.Wait(); err != nil {
		log.Fatalf("%v: %v: %s", coord.Args, err, out.String())
	}
	wg.Wait()
	d := time.Since(start)
	for i, err := range errs {
		if err != nil {
			log.Fatalf("%v: %v: %s", cmds[i].Args, err, logs[i])
		}
	}
	v, c := voteToDecision(logs)
	return d, v, c
}

// buildAt builds kvrflow as it was at git revision rev (with tags) into
// work and returns the binary's path.
func buildAt(rev, tags, work string) string {
	src := filepath.Join(work, "src-"+rev)
	check(os.MkdirAll(src, 0o755))
	archive := exec.Command("sh", "-c", fmt.Sprintf("git archive %q | tar -x -C %q", rev, src))
	archive.Stderr = os.Stderr
	check(archive.Run())
	bin := filepath.Join(work, "kvrflow-"+rev)
	build := exec.Command("go", "build", "-tags", tags, "-o", bin, "./cmd/kvrflow")
	build.Dir, build.Stdout, build.Stderr = src, os.Stderr, os.Stderr
	check(build.Run())
	return bin
}

// cpuWindow runs rounds S and W rounds, alternating, and prints the
// medians of the wall time and of the CPU time used in the timed window:
// by the agents (S) or workers (W), the coordinator, and etcd.
func cpuWindow(bin string, etcd *etcdproc.Server, nodes []node, work string, rounds int) {
	etcdPID := pidOf(etcd.DataDir)
	var sWall, sAgents, sCoord, sEtcd, wWall, wWorkers, wEtcd []time.Duration
	for r := 0; r <= rounds; r++ {
		// S: agents running, then the coordinator.
		reset(nodes)
		plan := writePlan(nodes, fmt.Sprintf("cpu-%d-%d", r, time.Now().UnixNano()), work)
		var agents []*exec.Cmd
		var wg sync.WaitGroup
		for _, nd := range nodes {
			c := exec.Command(bin, "cluster", "agent", "--once", "--etcd", etcd.Endpoint, "--node", nd.id, "--db", nd.db, "--log-level", "info", "--log-format", "json")
			c.Stderr = io.Discard
			check(c.Start())
			agents = append(agents, c)
			wg.Go(func() { _ = c.Wait() })
		}
		time.Sleep(time.Second)
		before, e0 := cpuOfAll(agents), cpuOf(etcdPID)
		coord := exec.Command(bin, "cluster", "restore", "--etcd", etcd.Endpoint, "--plan", plan, "--log-level", "warn")
		start := time.Now()
		check(coord.Run())
		wg.Wait()
		wall, e1 := time.Since(start), cpuOf(etcdPID)
		os.Remove(plan)
		if r > 0 {
			sWall, sAgents, sCoord, sEtcd = append(sWall, wall), append(sAgents, rusage(agents...)-before), append(sCoord, rusage(coord)), append(sEtcd, e1-e0)
		}
		// W: workers running, then told to go.
		e0 = cpuOf(etcdPID)
		var ws []*exec.Cmd
		wall = workersWith(nodes, func(cmds []*exec.Cmd) { ws = cmds; before = cpuOfAll(cmds) })
		if r > 0 {
			wWall, wWorkers, wEtcd = append(wWall, wall), append(wWorkers, rusage(ws...)-before), append(wEtcd, cpuOf(etcdPID)-e0)
		}
	}
	fmt.Printf("%d nodes, %d rounds, medians in ms: S wall %.1f, CPU agents %.1f, coordinator %.1f, etcd %.1f; W wall %.1f, CPU workers %.1f, etcd %.1f\n",
		len(nodes), rounds, ms(median(sWall)), ms(median(sAgents)), ms(median(sCoord)), ms(median(sEtcd)), ms(median(wWall)), ms(median(wWorkers)), ms(median(wEtcd)))
}

// cpuOf is the CPU time process pid has used so far (every thread's).
func cpuOf(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	check(err)
	var t time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		check(err)
		t += time.Duration(ns)
	}
	return t
}

func cpuOfAll(cmds []*exec.Cmd) time.Duration {
	var t time.Duration
	for _, c := range cmds {
		t += cpuOf(c.Process.Pid)
	}
	return t
}

// rusage is the CPU time the exited commands used.
func rusage(cmds ...*exec.Cmd) time.Duration {
	var t time.Duration
	for _, c := range cmds {
		t += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	return t
}

// pidOf finds the process whose command line holds arg.
func pidOf(arg string) int {
	procs, err := os.ReadDir("/proc")
	check(err)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(b), arg) && pid != os.Getpid() {
			return pid
		}
	}
	log.Fatalf("no process with %s in its command line", arg)
	return 0
}

// traced runs one S round with every process logging at debug level and,
// if show, prints their log lines in time order, in ms from the
// coordinator's start.
func traced(bin, endpoint string, nodes []node, name, work string, show, cold bool) {
	reset(nodes)
	plan := writePlan(nodes, name, work)
	defer os.Remove(plan)
	var wg sync.WaitGroup
	logs := make([]*strings.Builder, len(nodes)+1)
	var cmds []*exec.Cmd
	for i, nd := range nodes {
		c := exec.Command(bin, "cluster", "agent", "--once", "--etcd", endpoint, "--node", nd.id, "--db", nd.db, "--log-level", "debug", "--log-format", "json")
		logs[i] = &strings.Builder{}
		c.Stderr = logs[i]
		check(c.Start())
		cmds = append(cmds, c)
		wg.Go(func() { _ = c.Wait() })
	}
	start := time.Now()
	if !cold {
		time.Sleep(time.Second)
	}
	var before time.Duration
	for _, c := range cmds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", c.Process.Pid))
		check(err)
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		check(err)
		before += time.Duration(ns)
	}
	coord := exec.Command(bin, "cluster", "restore", "--etcd", endpoint, "--plan", plan, "--log-level", "debug", "--log-format", "json")
	logs[len(nodes)] = &strings.Builder{}
	coord.Stderr = logs[len(nodes)]
	if !cold {
		start = time.Now()
	}
	check(coord.Start())
	_ = coord.Wait()
	wg.Wait()
	end := time.Since(start)
	if !show {
		return
	}
	cpu := func(cs []*exec.Cmd) time.Duration {
		var t time.Duration
		for _, c := range cs {
			t += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		}
		return t
	}
	reset(nodes)
	var ind []*exec.Cmd
	for _, nd := range nodes {
		ind = append(ind, exec.Command(bin, "restore", "--from", nd.backup, "--db", nd.db, "--log-level", "warn"))
	}
	id := timeAll(ind)
	fmt.Printf("cpu: agents' start %.0f ms, ", ms(before))
	fmt.Printf("cpu: agents %.0f ms, coordinator %.0f ms; independent restores %.0f ms cpu, %.0f ms wall\n", ms(cpu(cmds)), ms(cpu([]*exec.Cmd{coord})), ms(cpu(ind)), ms(id))
	type line struct {
		t    time.Time
		who  string
		text string
	}
	var lines []line
	for i, l := range logs {
		who := "coord"
		if i < len(nodes) {
			who = nodes[i].id
		}
		for _, s := range strings.Split(l.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(s), &e) != nil {
				continue
			}
			t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", fmt.Sprint(e["time"]))
			if err != nil {
				continue
			}
			msg := fmt.Sprint(e["message"])
			for _, k := range []string{"step", "state", "event", "decision", "outcome"} {
				if v, ok := e[k]; ok {
					msg += fmt.Sprintf(" %s=%v", k, v)
				}
			}
			lines = append(lines, line{t, who, msg})
		}
	}
	slices.SortStableFunc(lines, func(x, y line) int { return x.t.Compare(y.t) })
	for _, l := range lines {
		fmt.Printf("%7.0f %-6s %s\n", ms(l.t.Sub(start)), l.who, l.text)
	}
	fmt.Printf("total %.1f ms\n", ms(end))
}

// voteToDecision is, from the agents' JSON logs, the time from the last
// node's "prepared; voting" to the first "decided": the protocol's own
// wait once every node is ready (the vote's write, the decision's
// transaction, the watch that brings it); and from that first "decided"
// to the last "node done": every node's commit, finish and outcome,
// together after the barrier. Millisecond timestamps.
func voteToDecision(logs []*strings.Builder) (time.Duration, time.Duration) {
	var lastPrepared, firstDecided, lastDone time.Time
	for _, l := range logs {
		for _, line := range strings.Split(l.String(), "\n") {
			var e struct {
				Time    string `json:"time"`
				Message string `json:"message"`
			}
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", e.Time)
			if err != nil {
				continue
			}
			switch e.Message {
			case "prepared; voting":
				if t.After(lastPrepared) {
					lastPrepared = t
				}
			case "decided":
				if firstDecided.IsZero() || t.Before(firstDecided) {
					firstDecided = t
				}
			case "node done":
				if t.After(lastDone) {
					lastDone = t
				}
			}
		}
	}
	if lastPrepared.IsZero() || firstDecided.IsZero() || lastDone.IsZero() {
		log.Fatal("no prepared, decided or node done line in the agents' logs")
	}
	return firstDecided.Sub(lastPrepared), lastDone.Sub(firstDecided)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// timeAll starts every command at once and returns the time until the
// last has exited; any failure ends the benchmark.
func timeAll(cmds []*exec.Cmd) time.Duration {
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	outs := make([]*strings.Builder, len(cmds))
	start := time.Now()
	for i, c := range cmds {
		outs[i] = &strings.Builder{}
		c.Stdout, c.Stderr = io.Discard, outs[i]
		check(c.Start())
		wg.Go(func() { errs[i] = c.Wait() })
	}
	wg.Wait()
	d := time.Since(start)
	for i, err := range errs {
		if err != nil {
			log.Fatalf("%v: %v: %s", cmds[i].Args, err, outs[i])
		}
	}
	return d
}

// putLatency is the median of 200 Puts' round trips.
func putLatency(s *etcdproc.Server) time.Duration {
	cli, err := s.Client("")
	check(err)
	defer cli.Close()
	var ds []time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		_, err := cli.Put(context.Background(), "/kvrflow-bench/rtt", strconv.Itoa(i))
		check(err)
		ds = append(ds, time.Since(start))
	}
	return median(ds)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func list(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.0f", ms(d)))
	}
	return strings.Join(parts, " ")
}

func gitRev() string {
	b, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(b))
	if st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		rev += " (with uncommitted changes)"
	}
	return rev
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "kernel " + strings.TrimSpace(string(b))
}

func etcdVersion() string {
	bin, err := etcdproc.Binary()
	if err != nil {
		return "etcd"
	}
	b, _ := exec.Command(bin, "--version").Output()
	first, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(first)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
