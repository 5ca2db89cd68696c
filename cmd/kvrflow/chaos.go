package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/kvrflow/kvrflow/internal/chaos"
	"github.com/rs/zerolog"
)

var chaosCommand = &command{
	name:    "chaos",
	args:    "[--from BACKUP | --cluster N --etcd ENDPOINTS] [--dir SCRATCH] [--iterations N] [--seed S] [--keep] [flags]",
	summary: "self-test: kill restores at random points on a scratch copy, recover, check",
	about: `An operator's self-test of kvrflow on this machine's storage. In a scratch
directory it makes an old database and (without --from) a sample backup, then
N times: resets the old database, runs kvrflow restore in a child process,
kills it at a random named fault point or at a random moment (SIGKILL), runs
recovery, and checks the invariants: the database is byte for byte the old one
or the restored one, the one the journal the kill left decides (the new one
exactly when the commit point record was durable), the journal agrees,
nothing in flight, no staging left. It prints every iteration's kill and
outcome, how many distinct fault points fired, how many recoveries rolled
forward and back, and the invariant failures, which must be 0 (exit code 1
otherwise).

The same --seed (with the same binary and backup) kills at the same fault
points in the same order, so a failure can be repeated. Kills at a random
moment (a timer, one iteration in four) cannot repeat: the output marks them
"not repeatable".

The restores' and recoveries' logs go to chaos.log in the scratch directory,
not to stderr; --keep keeps it, and the output says where.

It never touches a database it did not create: --dir must be a new or empty
directory (default: a new temporary directory, removed afterwards, unless
--keep); --from is only read.

With --cluster N it tests the cluster restore instead: N local nodes in the
scratch directory, each with an old database and a backup of its own; each
iteration runs one 'kvrflow cluster agent --once' per node and a 'kvrflow
cluster restore' against the etcd of --etcd (and the other --etcd-* flags),
kills an agent (sometimes twice, again during its recovery) or the
coordinator at a random moment (SIGKILL), runs it again, and checks that every
node holds the old database or every node the new one, the new one exactly
when etcd's decision is commit. It prints each iteration and the counts:
all-old, all-new, mixed (which must be 0).`,
	example: "kvrflow chaos --iterations 50 --seed 7 --dir /var/lib/app/chaos",
	new:     func() runner { return &chaosCmd{} },
}

type chaosCmd struct {
	common
	from, dir  string
	iterations int
	seed       uint64
	keep       bool
	nodes      int
	etcd       etcdFlags
}

func (c *chaosCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.from, "from", "", "the `BACKUP` to restore (default: a generated sample)")
	fs.StringVar(&c.dir, "dir", "", "a new or empty scratch `DIR` on the storage to test (default: a temporary directory)")
	fs.IntVar(&c.iterations, "iterations", 20, "how many restores to kill (`N`)")
	fs.Uint64Var(&c.seed, "seed", 0, "random `SEED` (default: from the clock; printed, so a run can be repeated)")
	fs.BoolVar(&c.keep, "keep", false, "keep the scratch directory (and its chaos.log) afterwards; the output says where")
	fs.IntVar(&c.nodes, "cluster", 0, "test the cluster restore across `N` local nodes instead (needs --etcd)")
	c.etcd.define(fs)
}

// chaosDoc is chaos's --json document: the run (chaosRun) and the
// harness's summary (see chaos.Summary; each iteration says whether its
// kill is repeatable).
type chaosDoc struct {
	chaosRun
	chaos.Summary
	exitReport
}

// chaosRun is what both chaos documents say of the run itself: the seed,
// the scratch directory, where it was kept (with --keep; "" when it was
// removed) and the log file of the children.
type chaosRun struct {
	Seed    uint64 `json:"seed"`
	Scratch string `json:"scratch"`
	Kept    string `json:"kept,omitempty"`
	LogFile string `json:"log"`
}

// run is the chaosRun of this start.
func (s *chaosStart) run(seed uint64, keep bool) chaosRun {
	r := chaosRun{Seed: seed, Scratch: s.scratch, LogFile: s.logFile.Name()}
	if keep {
		r.Kept = s.scratch
	}
	return r
}

func (d *chaosDoc) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, it := range d.Log {
		kill := it.Kill
		if !it.Repeatable {
			kill += " (not repeatable)"
		}
		outcome := it.Outcome
		if !it.Killed {
			outcome = "finished before the kill"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", it.N, kill, outcome, it.Result)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "seed\t%d\n", d.Seed)
	fmt.Fprintf(tw, "iterations\t%d\n", d.Iterations)
	fmt.Fprintf(tw, "distinct fault points fired\t%d\n", d.PointsFired)
	fmt.Fprintf(tw, "killed by timer (not repeatable)\t%d\n", d.KilledByTimer)
	fmt.Fprintf(tw, "finished before the kill\t%d\n", d.Completed)
	fmt.Fprintf(tw, "recoveries rolled forward\t%d\n", d.RolledForward)
	fmt.Fprintf(tw, "recoveries rolled back\t%d\n", d.RolledBack)
	fmt.Fprintf(tw, "nothing in flight\t%d\n", d.NothingToDo)
	fmt.Fprintf(tw, "invariant failures\t%d\n", d.Failures)
	chaosTail(w, tw, d.Kept, d.LogFile, d.FailureDetails)
}

// errChaos is returned when an invariant failed.
var errChaos = errors.New("chaos: invariant failures")

func (c *chaosCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if c.nodes != 0 || c.etcd.endpoints != "" {
		return c.runCluster(ctx, o)
	}
	if c.from != "" {
		if fi, err := os.Stat(c.from); err != nil || !fi.IsDir() {
			return nil, usagef("--from %s: not a backup directory (%v)", c.from, err)
		}
	}
	if c.iterations < 1 {
		return nil, usagef("--iterations must be at least 1")
	}
	s, err := c.start(o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	log, self, scratch, lf := s.log, s.self, s.scratch, s.logFile
	doc := &chaosDoc{chaosRun: s.run(c.seed, c.keep)}
	flog, err := c.loggerTo(lf, false)
	if err != nil {
		return nil, err
	}
	log.Debug().Str("scratch", scratch).Str("log", doc.LogFile).Msg("chaos started")
	h, err := chaos.New(ctx, chaos.Config{Self: self, Scratch: scratch, From: c.from, Seed: c.seed, RolledBackCode: exitRolledBack, Log: flog, Output: lf})
	if err != nil {
		return doc, err
	}
	for i := 1; i <= c.iterations; i++ {
		if err := ctx.Err(); err != nil {
			return doc, err
		}
		it, err := h.Iteration(ctx, i)
		if err != nil {
			return doc, err
		}
		doc.Add(it)
	}
	if doc.Failures > 0 {
		return doc, fmt.Errorf("%w: %d of %d iterations (seed %d)", errChaos, doc.Failures, doc.Iterations, c.seed)
	}
	return doc, nil
}

// chaosStart is what both forms of chaos set up before their first
// iteration: the logger, the seed (the clock's if none was given),
// kvrflow's own binary, the scratch directory and the log file in it.
type chaosStart struct {
	log     *zerolog.Logger
	self    string
	scratch string
	logFile *os.File // the restores' and recoveries' logs: stderr keeps chaos's own
	cleanup func()
}

func (s *chaosStart) close() {
	s.logFile.Close()
	s.cleanup()
}

// start sets up a chaos run; close undoes it.
func (c *chaosCmd) start(o *stdio) (*chaosStart, error) {
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
	scratch, cleanup, err := chaos.Scratch(c.dir, c.keep)
	if err != nil {
		if c.dir == "" {
			return nil, err // no temporary directory: not the user's doing
		}
		return nil, asUsage(err) // --dir not usable, or not empty (chaos.ErrNotEmpty)
	}
	lf, err := os.OpenFile(filepath.Join(scratch, chaos.LogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("chaos: %w", err)
	}
	return &chaosStart{log: log, self: self, scratch: scratch, logFile: lf, cleanup: cleanup}, nil
}

// chaosTail ends both forms' text report: where the scratch directory and
// the log are (or that they were removed), then each invariant failure.
func chaosTail(w io.Writer, tw *tabwriter.Writer, kept, logFile string, failures []string) {
	if kept != "" {
		fmt.Fprintf(tw, "scratch directory kept\t%s\n", kept)
		fmt.Fprintf(tw, "log\t%s\n", logFile)
	} else {
		fmt.Fprintf(tw, "log\t%s (removed with the scratch directory; --keep keeps it)\n", logFile)
	}
	tw.Flush()
	for _, f := range failures {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
}
