package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

var chaosCommand = &command{
	name:    "chaos",
	args:    "[--from BACKUP] [--dir SCRATCH] [--iterations N] [--seed S] [flags]",
	summary: "self-test: kill restores at random points on a scratch copy, recover, check",
	about: `An operator's self-test of kvrflow on this machine's storage. In a scratch
directory it makes an old database and (without --from) a sample backup, then
N times: resets the old database, runs kvrflow restore in a child process,
kills it at a random named fault point or at a random moment (SIGKILL), runs
recovery, and checks the invariants: the database is byte for byte the old one
or the restored one, the new one exactly when the journal says committed,
nothing in flight, no staging left. It prints how many iterations ran, how many
distinct fault points fired, how many recoveries rolled forward and back, and
the invariant failures, which must be 0 (exit code 1 otherwise).

It never touches a database it did not create: --dir must be a new or empty
directory (default: a new temporary directory, removed afterwards); --from is
only read.`,
	example: "kvrflow chaos --iterations 50 --seed 7 --dir /var/lib/app/chaos",
	new:     func() runner { return &chaosCmd{} },
}

type chaosCmd struct {
	common
	from, dir  string
	iterations int
	seed       uint64
	keep       bool
}

func (c *chaosCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.from, "from", "", "the `BACKUP` to restore (default: a generated sample)")
	fs.StringVar(&c.dir, "dir", "", "a new or empty scratch `DIR` on the storage to test (default: a temporary directory)")
	fs.IntVar(&c.iterations, "iterations", 20, "how many restores to kill (`N`)")
	fs.Uint64Var(&c.seed, "seed", 0, "random `SEED` (default: from the clock; printed, so a run can be repeated)")
	fs.BoolVar(&c.keep, "keep", false, "keep the scratch directory afterwards")
}

// chaosDoc is chaos's --json document.
type chaosDoc struct {
	Seed           uint64           `json:"seed"`
	Scratch        string           `json:"scratch"`
	Iterations     int              `json:"iterations"`
	PointsFired    int              `json:"distinct_fault_points_fired"`
	KilledByTimer  int              `json:"killed_by_timer"`
	Completed      int              `json:"completed_before_the_kill"`
	RolledForward  int              `json:"rolled_forward"`
	RolledBack     int              `json:"rolled_back"`
	NothingToDo    int              `json:"nothing_in_flight"`
	Failures       int              `json:"invariant_failures"`
	FailureDetails []string         `json:"failure_details,omitempty"`
	Fired          map[string]int   `json:"fired"`
	Log            []chaosIteration `json:"iterations_log"`
	exitReport
}

type chaosIteration struct {
	N       int    `json:"n"`
	Kill    string `json:"kill"`   // the fault spec, or "timer Xms"
	Killed  bool   `json:"killed"` // the child died by SIGKILL
	Outcome string `json:"outcome"`
	Result  string `json:"database"` // old or new
}

func (d *chaosDoc) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "seed\t%d\n", d.Seed)
	fmt.Fprintf(tw, "iterations\t%d\n", d.Iterations)
	fmt.Fprintf(tw, "distinct fault points fired\t%d\n", d.PointsFired)
	fmt.Fprintf(tw, "killed by timer\t%d\n", d.KilledByTimer)
	fmt.Fprintf(tw, "finished before the kill\t%d\n", d.Completed)
	fmt.Fprintf(tw, "recoveries rolled forward\t%d\n", d.RolledForward)
	fmt.Fprintf(tw, "recoveries rolled back\t%d\n", d.RolledBack)
	fmt.Fprintf(tw, "nothing in flight\t%d\n", d.NothingToDo)
	fmt.Fprintf(tw, "invariant failures\t%d\n", d.Failures)
	tw.Flush()
	for _, f := range d.FailureDetails {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
}

// errChaos is returned when an invariant failed.
var errChaos = errors.New("chaos: invariant failures")

func (c *chaosCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if c.from != "" {
		if fi, err := os.Stat(c.from); err != nil || !fi.IsDir() {
			return nil, usagef("--from %s: not a backup directory (%v)", c.from, err)
		}
	}
	if c.iterations < 1 {
		return nil, usagef("--iterations must be at least 1")
	}
	log, err := c.logger(o)
	if err != nil {
		return nil, err
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("chaos: find kvrflow's own binary: %w", err)
	}
	scratch, cleanup, err := chaosScratch(c.dir, c.keep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	h := &chaosHarness{self: self, scratch: scratch, log: log, rng: rand.New(rand.NewPCG(c.seed, 0x6b76))}
	if err := h.setup(ctx, c.from); err != nil {
		return nil, err
	}
	doc := &chaosDoc{Seed: c.seed, Scratch: scratch, Fired: map[string]int{}}
	for i := 1; i <= c.iterations; i++ {
		if err := ctx.Err(); err != nil {
			return doc, err
		}
		it, fail, err := h.iteration(ctx, i)
		if err != nil {
			return doc, err
		}
		doc.Iterations++
		doc.Log = append(doc.Log, it)
		switch {
		case !it.Killed:
			doc.Completed++
		case strings.HasPrefix(it.Kill, "timer"):
			doc.KilledByTimer++
		default:
			point, _, _ := strings.Cut(strings.TrimPrefix(it.Kill, failSpec+","), ":")
			doc.Fired[point]++
		}
		switch it.Outcome {
		case "rolled forward":
			doc.RolledForward++
		case "rolled back":
			doc.RolledBack++
		default:
			doc.NothingToDo++
		}
		if fail != "" {
			doc.Failures++
			doc.FailureDetails = append(doc.FailureDetails, fmt.Sprintf("iteration %d (%s): %s", i, it.Kill, fail))
		}
	}
	doc.PointsFired = len(doc.Fired)
	if doc.Failures > 0 {
		return doc, fmt.Errorf("%w: %d of %d iterations (seed %d)", errChaos, doc.Failures, doc.Iterations, c.seed)
	}
	return doc, nil
}

// chaosScratch returns the scratch directory: dir, which must be new or
// empty, or a new temporary one. cleanup removes what chaos made.
func chaosScratch(dir string, keep bool) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "kvrflow-chaos-")
		if err != nil {
			return "", nil, fmt.Errorf("chaos: %w", err)
		}
		return d, func() {
			if !keep {
				os.RemoveAll(d)
			}
		}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, asUsage(fmt.Errorf("--dir %s: %w", dir, err))
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(abs, 0o755); err != nil {
			return "", nil, asUsage(fmt.Errorf("--dir: %w", err))
		}
	case err != nil:
		return "", nil, asUsage(fmt.Errorf("--dir: %w", err))
	case len(entries) > 0:
		return "", nil, usagef("--dir %s is not empty: chaos only works in a directory it creates or that is empty", abs)
	}
	// Only what chaos made inside is removed; the directory itself stays.
	return abs, func() {
		if keep {
			return
		}
		for _, n := range []string{"work", "pristine", "sample-src", "sample-backup"} {
			os.RemoveAll(filepath.Join(abs, n))
		}
	}, nil
}

// chaosHarness holds what the iterations share.
type chaosHarness struct {
	self, scratch string
	log           *zerolog.Logger
	rng           *rand.Rand
	backup        string
	pristine      string            // the old database, kept to reset from
	old, new      map[string]string // file name -> size:crc32c
	timerMax      time.Duration     // how long a clean restore takes
	// hits counts each point's hits in a clean restore, and in one whose
	// verify fails (so the rollback path's points are reached too).
	hits, failHits map[string]int
}

// failSpec makes a restore fail (and roll back) in chaos's failure-path
// iterations.
const failSpec = "step.verify.end:eio"

func (h *chaosHarness) db() string { return filepath.Join(h.scratch, "work", "node", "db") }

// setup makes the backup (unless given), the old database, and measures a
// clean restore: its duration bounds the random kill moments, its result is
// the "new" database.
func (h *chaosHarness) setup(ctx context.Context, from string) error {
	h.backup = from
	if from == "" {
		src := filepath.Join(h.scratch, "sample-src")
		if err := chaosSampleDB(src, 11, 4000); err != nil {
			return err
		}
		h.backup = filepath.Join(h.scratch, "sample-backup")
		if _, err := kvrflow.Backup(ctx, src, h.backup, nil); err != nil {
			return fmt.Errorf("chaos: make the sample backup: %w", err)
		}
	}
	h.pristine = filepath.Join(h.scratch, "pristine", "db")
	if err := os.MkdirAll(filepath.Dir(h.pristine), 0o755); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := chaosSampleDB(h.pristine, 7, 1500); err != nil {
		return err
	}
	var err error
	if h.old, err = dirDigest(h.pristine); err != nil {
		return err
	}
	if err := h.reset(); err != nil {
		return err
	}
	start := time.Now()
	if out, err := h.child(ctx, ""); err != nil {
		return fmt.Errorf("chaos: a clean restore of %s failed: %w: %s", h.backup, err, out)
	}
	h.timerMax = max(time.Since(start), 50*time.Millisecond)
	if h.new, err = dirDigest(h.db()); err != nil {
		return err
	}
	// Learn which points a restore passes, on the clean path and on the
	// rollback path, in-process with a counting fault set.
	if h.hits, err = h.countHits(ctx, ""); err != nil {
		return err
	}
	if h.failHits, err = h.countHits(ctx, failSpec); err != nil {
		return err
	}
	delete(h.failHits, "step.verify.end")
	if sameDigest(h.old, h.new) {
		return fmt.Errorf("chaos: the backup %s holds the same files as the old database: nothing to tell apart", h.backup)
	}
	return nil
}

// countHits restores in-process with spec (a failure to inject, or none)
// and returns how often each point was hit.
func (h *chaosHarness) countHits(ctx context.Context, spec string) (map[string]int, error) {
	if err := h.reset(); err != nil {
		return nil, err
	}
	set := fault.NewCounter()
	if spec != "" {
		var err error
		if set, err = fault.Parse(spec); err != nil {
			return nil, err
		}
	}
	_, err := kvrflow.Restore(ctx, kvrflow.Options{DB: h.db(), Source: h.backup, Faults: set, Log: h.log})
	if spec == "" && err != nil {
		return nil, fmt.Errorf("chaos: a clean restore of %s failed: %w", h.backup, err)
	}
	if spec != "" && !kvrflow.IsRolledBack(err) {
		return nil, fmt.Errorf("chaos: a restore with %s did not roll back: %v", spec, err)
	}
	return set.Hits(), nil
}

// pick returns a random point of hits, weighted by its hit count, and a
// hit number to crash on.
func (h *chaosHarness) pick(hits map[string]int) (string, int) {
	names := make([]string, 0, len(hits))
	total := 0
	for n, c := range hits {
		if c > 0 {
			names = append(names, n)
			total += c
		}
	}
	sort.Strings(names)
	// Half the time a point uniformly (rare points get their turn), else
	// weighted by hits (each hit an equally likely moment).
	if h.rng.IntN(2) == 0 {
		p := names[h.rng.IntN(len(names))]
		return p, 1 + h.rng.IntN(hits[p])
	}
	k := h.rng.IntN(total)
	for _, n := range names {
		if k < hits[n] {
			return n, k + 1
		}
		k -= hits[n]
	}
	return names[len(names)-1], 1
}

// reset makes a fresh old database and removes kvrflow's directory.
func (h *chaosHarness) reset() error {
	work := filepath.Join(h.scratch, "work")
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("chaos: reset: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(h.db()), 0o755); err != nil {
		return fmt.Errorf("chaos: reset: %w", err)
	}
	return os.CopyFS(h.db(), os.DirFS(h.pristine))
}

// child runs kvrflow restore in a child process with the fault spec.
func (h *chaosHarness) child(ctx context.Context, spec string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, h.self, "restore", "--from", h.backup, "--db", h.db(), "--log-level", "error")
	cmd.Env = append(os.Environ(), fault.EnvVar+"="+spec)
	return cmd.CombinedOutput()
}

// iteration kills one restore and checks the recovery. fail describes an
// invariant failure; err is a failure of the harness itself.
func (h *chaosHarness) iteration(ctx context.Context, n int) (it chaosIteration, fail string, err error) {
	it.N = n
	if err := h.reset(); err != nil {
		return it, "", err
	}
	var cmd *exec.Cmd
	if h.rng.IntN(4) == 0 { // a random moment
		delay := time.Duration(h.rng.Int64N(int64(h.timerMax)))
		it.Kill = fmt.Sprintf("timer %s", delay.Round(time.Millisecond))
		cmd = exec.CommandContext(ctx, h.self, "restore", "--from", h.backup, "--db", h.db(), "--log-level", "error")
		cmd.Env = append(os.Environ(), fault.EnvVar+"=")
		if err := cmd.Start(); err != nil {
			return it, "", fmt.Errorf("chaos: start restore: %w", err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	} else { // a named point: on the clean path, or (1 in 3) the rollback path
		hits, prefix := h.hits, ""
		if h.rng.IntN(3) == 0 {
			hits, prefix = h.failHits, failSpec+","
		}
		p, nth := h.pick(hits)
		it.Kill = fmt.Sprintf("%s%s:crash@%d", prefix, p, nth)
		cmd = exec.CommandContext(ctx, h.self, "restore", "--from", h.backup, "--db", h.db(), "--log-level", "error")
		cmd.Env = append(os.Environ(), fault.EnvVar+"="+it.Kill)
		_ = cmd.Run()
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		it.Killed = true
	case cmd.ProcessState.Success(), strings.HasPrefix(it.Kill, failSpec) && cmd.ProcessState.ExitCode() == exitRolledBack:
	default:
		return it, fmt.Sprintf("restore exited %s without being killed", cmd.ProcessState), nil
	}
	recovered, err := kvrflow.Recover(ctx, kvrflow.Options{DB: h.db(), Log: h.log})
	if err != nil {
		return it, "recovery failed: " + err.Error(), nil
	}
	it.Outcome = "nothing"
	for _, r := range recovered {
		switch r.Run.Outcome {
		case steps.OutcomeCommitted:
			it.Outcome = "rolled forward"
		case steps.OutcomeRolledBack:
			it.Outcome = "rolled back"
		}
	}
	return it, h.check(&it), nil
}

// check verifies the invariants after a recovery.
func (h *chaosHarness) check(it *chaosIteration) string {
	got, err := dirDigest(h.db())
	if err != nil {
		return "the database directory cannot be read: " + err.Error()
	}
	switch {
	case sameDigest(got, h.old):
		it.Result = "old"
	case sameDigest(got, h.new):
		it.Result = "new"
	default:
		return "the database is neither the old one nor the new one"
	}
	j, err := journal.Open(filepath.Join(h.db()+".kvrflow", steps.JournalName), journal.Options{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		if it.Result != "old" {
			return "no journal, yet the database changed"
		}
		return ""
	}
	if err != nil {
		return "journal: " + err.Error()
	}
	defer j.Close()
	runs, err := j.Runs(0)
	if err != nil {
		return "journal: " + err.Error()
	}
	committed := false
	for _, r := range runs {
		if r.InFlight() {
			return fmt.Sprintf("run %d still in flight in %s", r.ID, r.State)
		}
		committed = committed || r.Outcome == steps.OutcomeCommitted
	}
	if committed != (it.Result == "new") {
		return fmt.Sprintf("the database is the %s one but the journal says committed=%v", it.Result, committed)
	}
	names, _ := os.ReadDir(h.db() + ".kvrflow")
	for _, e := range names {
		if strings.HasPrefix(e.Name(), "staging-") || strings.HasPrefix(e.Name(), "old-") {
			return e.Name() + " left behind"
		}
	}
	return ""
}

// dirDigest maps each file of dir to its size and crc32c. LOCK (created
// empty when a database is opened, even read-only) is left out.
func dirDigest(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	table := crc32.MakeTable(crc32.Castagnoli)
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = fmt.Sprintf("%d:%08x", len(b), crc32.Checksum(b, table))
	}
	return out, nil
}

func sameDigest(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// chaosSampleDB makes a small Pebble database of n keys in dir, flushed
// into a few tables.
func chaosSampleDB(dir string, seed uint64, n int) error {
	db, err := pebble.Open(dir, &pebble.Options{Logger: steps.PebbleLogger(zerolog.Nop())})
	if err != nil {
		return fmt.Errorf("chaos: make a sample database in %s: %w", dir, err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	val := make([]byte, 256)
	for i := 0; i < n; i++ {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		if err := db.Set(fmt.Appendf(nil, "key-%07d", i), val, pebble.NoSync); err != nil {
			db.Close()
			return fmt.Errorf("chaos: write sample %s: %w", dir, err)
		}
		if i%(n/4+1) == n/4 {
			if err := db.Flush(); err != nil {
				db.Close()
				return fmt.Errorf("chaos: flush sample %s: %w", dir, err)
			}
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("chaos: close sample %s: %w", dir, err)
	}
	return nil
}
