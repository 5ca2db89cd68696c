package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/steps"
)

// FailSpec makes a restore fail (and roll back) in the rollback-path
// iterations; their kill comes after it.
const FailSpec = "restore.verify.end:eio"

// The sample databases: the backup's (unless From is given) and the old
// one.
var (
	sampleBackup = sampledb.Spec{Seed: 11, Keys: 4000, ValueSize: 256, Flushes: 3}
	sampleOld    = sampledb.Spec{Seed: 7, Keys: 1500, ValueSize: 256, Flushes: 3}
)

// Config says what the harness runs.
type Config struct {
	// Self is the kvrflow binary the restores run in.
	Self string
	// Scratch is the directory to work in (see Scratch).
	Scratch string
	// From is the backup to restore; "" makes a sample.
	From string
	// Seed seeds every random choice: the same seed, binary and backup
	// pick the same kills.
	Seed uint64
	// RolledBackCode is the exit code of a restore that rolled back.
	RolledBackCode int
	// Log receives the logs of the restores and recoveries the harness
	// runs in-process (nil: none), and Output the output of the kvrflow
	// restore child processes (nil: discarded). kvrflow chaos points both
	// at LogName in the scratch directory, so that they are not
	// interleaved with its own output on stderr.
	Log    *zerolog.Logger
	Output io.Writer
}

// LogName is the file in the scratch directory kvrflow chaos writes the
// restores' and recoveries' logs to; Scratch's cleanup removes it.
const LogName = "chaos.log"

// Harness is what the iterations share.
type Harness struct {
	cfg      Config
	log      zerolog.Logger
	rng      *rand.Rand
	backup   string
	pristine string        // the old database, kept to reset from
	target   check.Target  // DB, old and new by digest
	timerMax time.Duration // how long a clean restore takes
	// hits counts each point's hits in a clean restore, and in one whose
	// verify fails (so the rollback path's points are reached too).
	hits, failHits map[string]int
}

// Iteration is how one iteration went.
type Iteration struct {
	N    int    `json:"n"`
	Kill string `json:"kill"` // the fault spec, or "timer Xms"
	// Repeatable is false for a timer kill: the same seed picks the same
	// delay, but what a restore has done by then differs from run to run.
	// A fault spec kills at the same point on every run with the seed.
	Repeatable bool `json:"repeatable"`
	Killed     bool `json:"killed"` // the child died by SIGKILL
	// Outcome is what recovery did: "rolled forward", "rolled back" or
	// "nothing".
	Outcome string `json:"outcome"`
	// Expected is the database the journal the kill left decides; Result
	// the one DB holds after recovery ("old" or "new").
	Expected string `json:"expected,omitempty"`
	Result   string `json:"database"`
	// Failure says how the invariant failed; "" if it held.
	Failure string `json:"-"`
}

// Point returns the fault point the iteration killed at, "" for a timer
// kill or a restore that ended first.
func (it Iteration) Point() string {
	if !it.Killed || strings.HasPrefix(it.Kill, "timer") {
		return ""
	}
	p, _, _ := strings.Cut(strings.TrimPrefix(it.Kill, FailSpec+","), ":")
	return p
}

// Scratch returns the scratch directory: dir, which must be new or empty
// (else an error matching ErrNotEmpty), made if new, or with dir "" a new
// temporary one. cleanup removes what chaos made there, unless keep; the
// directory itself only if Scratch made it as a temporary one.
func Scratch(dir string, keep bool) (_ string, cleanup func(), _ error) {
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
		return "", nil, fmt.Errorf("--dir %s: %w", dir, err)
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(abs, 0o755); err != nil {
			return "", nil, fmt.Errorf("--dir: %w", err)
		}
	case err != nil:
		return "", nil, fmt.Errorf("--dir: %w", err)
	case len(entries) > 0:
		return "", nil, fmt.Errorf("%w: --dir %s is not empty: chaos only works in a directory it creates or that is empty", ErrNotEmpty, abs)
	}
	// Only what chaos made inside is removed; the directory itself stays.
	return abs, func() {
		if keep {
			return
		}
		// (nodes, backups and plans are kvrflow chaos --cluster's.)
		for _, n := range []string{"work", "pristine", "sample-src", "sample-backup", "nodes", "backups", "plans", LogName} {
			os.RemoveAll(filepath.Join(abs, n))
		}
	}, nil
}

// New sets the harness up in cfg.Scratch: makes the backup (unless
// given) and the old database, and measures a clean restore: its
// duration bounds the random kill moments, its result is the new
// database. It learns in-process which points a restore passes.
func New(ctx context.Context, cfg Config) (*Harness, error) {
	h := &Harness{cfg: cfg, log: zerolog.Nop(), rng: rand.New(rand.NewPCG(cfg.Seed, 0x6b76)), backup: cfg.From}
	if cfg.Log != nil {
		h.log = *cfg.Log
	}
	h.target.DB = filepath.Join(cfg.Scratch, "work", "node", "db")
	if h.backup == "" {
		src := filepath.Join(cfg.Scratch, "sample-src")
		if err := sampledb.Make(nil, src, sampleBackup); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		h.backup = filepath.Join(cfg.Scratch, "sample-backup")
		if _, err := kvrflow.Backup(ctx, src, h.backup, nil); err != nil {
			return nil, fmt.Errorf("chaos: make the sample backup: %w", err)
		}
	}
	h.pristine = filepath.Join(cfg.Scratch, "pristine", "db")
	if err := os.MkdirAll(filepath.Dir(h.pristine), 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if err := sampledb.Make(nil, h.pristine, sampleOld); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	old, err := check.Digest(nil, h.pristine)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	h.target.Old = check.Database{Files: old}
	if err := h.reset(); err != nil {
		return nil, err
	}
	start := time.Now()
	if out, err := h.child(ctx, ""); err != nil {
		return nil, fmt.Errorf("%w: a clean restore of %s failed: %w: %s", ErrSetup, h.backup, err, out)
	}
	h.timerMax = max(time.Since(start), 50*time.Millisecond)
	newFiles, err := check.Digest(nil, h.target.DB)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if check.Equal(old, newFiles) {
		return nil, fmt.Errorf("%w: the backup %s holds the same files as the old database: nothing to tell apart", ErrSetup, h.backup)
	}
	h.target.New = check.Database{Files: newFiles}
	if h.hits, err = h.countHits(ctx, ""); err != nil {
		return nil, err
	}
	if h.failHits, err = h.countHits(ctx, FailSpec); err != nil {
		return nil, err
	}
	delete(h.failHits, "restore.verify.end")
	return h, nil
}

// countHits restores in-process with spec (a failure to inject, or none)
// and returns how often each point was hit.
func (h *Harness) countHits(ctx context.Context, spec string) (map[string]int, error) {
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
	_, err := kvrflow.Restore(ctx, kvrflow.Options{DB: h.target.DB, Source: h.backup, Faults: set, Log: &h.log})
	if spec == "" && err != nil {
		return nil, fmt.Errorf("%w: a clean restore of %s failed: %w", ErrSetup, h.backup, err)
	}
	if spec != "" && !kvrflow.IsRolledBack(err) {
		return nil, fmt.Errorf("%w: a restore with %s did not roll back: %v", ErrSetup, spec, err)
	}
	return set.Hits(), nil
}

// pick returns a random point of hits, weighted by its hit count, and a
// hit number to crash on.
func (h *Harness) pick(hits map[string]int) (string, int) {
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
func (h *Harness) reset() error {
	work := filepath.Join(h.cfg.Scratch, "work")
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("chaos: reset: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(h.target.DB), 0o755); err != nil {
		return fmt.Errorf("chaos: reset: %w", err)
	}
	return os.CopyFS(h.target.DB, os.DirFS(h.pristine))
}

// command returns kvrflow restore of the backup in a child process with
// the fault spec.
func (h *Harness) command(ctx context.Context, spec string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.cfg.Self, "restore", "--from", h.backup, "--db", h.target.DB, "--log-format", "console")
	cmd.Env = append(os.Environ(), fault.EnvVar+"="+spec)
	cmd.Stdout, cmd.Stderr = h.cfg.Output, h.cfg.Output
	return cmd
}

// child runs kvrflow restore in a child process with the fault spec and
// returns its output, which also goes to Config.Output.
func (h *Harness) child(ctx context.Context, spec string) ([]byte, error) {
	cmd := h.command(ctx, spec)
	cmd.Stdout, cmd.Stderr = nil, nil
	out, err := cmd.CombinedOutput()
	if h.cfg.Output != nil {
		_, _ = h.cfg.Output.Write(out) // a log: its failure changes no result
	}
	return out, err
}

// Iteration kills one restore and checks the recovery. An invariant
// failure is in the Iteration's Failure; err is a failure of the harness
// itself.
func (h *Harness) Iteration(ctx context.Context, n int) (it Iteration, err error) {
	it.N = n
	if err := h.reset(); err != nil {
		return it, err
	}
	var cmd *exec.Cmd
	if h.rng.IntN(4) == 0 { // a random moment
		// Float64 draws one number whatever timerMax (measured, so it
		// differs from run to run) is: the choices after this one stay
		// the seed's.
		delay := time.Duration(h.rng.Float64() * float64(h.timerMax))
		it.Kill = fmt.Sprintf("timer %s", delay.Round(time.Millisecond))
		h.log.Info().Int("iteration", n).Str("kill", it.Kill).Msg("chaos iteration")
		cmd = h.command(ctx, "")
		if err := cmd.Start(); err != nil {
			return it, fmt.Errorf("chaos: start restore: %w", err)
		}
		// Not a guess at a state: the moment is the random choice, and
		// the journal says what it hit (check.Target.Expect).
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	} else { // a named point: on the clean path, or (1 in 3) the rollback path
		hits, prefix := h.hits, ""
		if h.rng.IntN(3) == 0 {
			hits, prefix = h.failHits, FailSpec+","
		}
		p, nth := h.pick(hits)
		it.Kill = fmt.Sprintf("%s%s:crash@%d", prefix, p, nth)
		it.Repeatable = true
		h.log.Info().Int("iteration", n).Str("kill", it.Kill).Msg("chaos iteration")
		cmd = h.command(ctx, it.Kill)
		_ = cmd.Run()
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		it.Killed = true
	case cmd.ProcessState.Success(), strings.HasPrefix(it.Kill, FailSpec) && cmd.ProcessState.ExitCode() == h.cfg.RolledBackCode:
	default:
		it.Failure = fmt.Sprintf("restore exited %s without being killed", cmd.ProcessState)
		return it, nil
	}
	expect, err := h.target.Expect()
	if err != nil {
		it.Failure = err.Error()
		return it, nil
	}
	it.Expected = string(expect)
	recovered, err := kvrflow.Recover(ctx, kvrflow.Options{DB: h.target.DB, Log: &h.log})
	if err != nil {
		it.Failure = "recovery failed: " + err.Error()
		return it, nil
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
	rep, err := h.target.Recovered()
	if err != nil {
		it.Failure = err.Error()
		return it, nil
	}
	it.Result = string(rep.DB)
	if rep.DB != expect {
		it.Failure = fmt.Sprintf("recovery left the %s database; the journal the kill left decided %s", rep.DB, expect)
	}
	return it, nil
}

// Summary counts iterations; its JSON is part of kvrflow chaos --json's
// document.
type Summary struct {
	Iterations     int            `json:"iterations"`
	PointsFired    int            `json:"distinct_fault_points_fired"`
	KilledByTimer  int            `json:"killed_by_timer"`
	Completed      int            `json:"completed_before_the_kill"`
	RolledForward  int            `json:"rolled_forward"`
	RolledBack     int            `json:"rolled_back"`
	NothingToDo    int            `json:"nothing_in_flight"`
	Failures       int            `json:"invariant_failures"`
	FailureDetails []string       `json:"failure_details,omitempty"`
	Fired          map[string]int `json:"fired"`
	Log            []Iteration    `json:"iterations_log"`
}

// Add counts it.
func (s *Summary) Add(it Iteration) {
	if s.Fired == nil {
		s.Fired = map[string]int{}
	}
	s.Iterations++
	s.Log = append(s.Log, it)
	switch {
	case !it.Killed:
		s.Completed++
	case it.Point() == "":
		s.KilledByTimer++
	default:
		s.Fired[it.Point()]++
	}
	s.PointsFired = len(s.Fired)
	switch it.Outcome {
	case "rolled forward":
		s.RolledForward++
	case "rolled back":
		s.RolledBack++
	default:
		s.NothingToDo++
	}
	if it.Failure != "" {
		s.Failures++
		s.FailureDetails = append(s.FailureDetails, fmt.Sprintf("iteration %d (%s): %s", it.N, it.Kill, it.Failure))
	}
}
