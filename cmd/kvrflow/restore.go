package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/steps"
)

var restoreCommand = &command{
	name:    "restore",
	args:    "--from SRC --db DIR [flags]",
	summary: "restore a backup into a database directory, atomically",
	about: `Restore the backup SRC into the database directory DIR, whose parent must
exist. SRC is a directory made by kvrflow backup (Pebble), a RocksDB/Kvrocks
BackupEngine directory (its one backup, or --backup-id N where there are
several), or a plain RocksDB checkpoint; in a local directory or under a
prefix of an object store: s3://BUCKET/PREFIX (an S3-compatible server:
?endpoint=http://HOST:PORT&use_path_style=true; also region=R, profile=P),
gs://BUCKET/PREFIX, azblob://CONTAINER/PREFIX or file:///DIR. Credentials come
from the environment as the AWS tools read it (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3,
AWS_PROFILE, the shared files), never from the URL, and are never journaled,
logged or printed. A remote backup's files are copied, several at once, each
streamed with one GET per 64 MiB and checked against the backup's crc32c
before it is synced;
--rate-limit caps the transfer. First any run left in flight for DIR
is finished or rolled back. Then the backup is checked file by file, written
to a staging directory beside DIR, verified, and swapped into place in one
atomic step. On failure, or on SIGINT/SIGTERM before the swap, the run is
rolled back and DIR holds what it held before (exit code 1; 2 if the backup
turned out corrupt while being copied or checked). If the process
is killed, DIR still holds the old or the new database, and the next kvrflow
restore or recover finishes the run.`,
	example: `kvrflow restore --from /backups/app-2024-06-01 --db /var/lib/app/db
  kvrflow restore --from 's3://backups/app/2024-06-01?region=eu-west-1' --db /var/lib/app/db --rate-limit 100MiB/s`,
	new: func() runner { return &restoreCmd{} },
}

type restoreCmd struct {
	common
	from, db, mode, engine, fault, verify string
	rateLimit                             string
	backupID                              uint64
	force, noExchange, noDelta            bool
	keepOld                               int
}

func (c *restoreCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.from, "from", "", "the backup `SRC` to restore: a directory, or a URL s3://BUCKET/PREFIX, gs://, azblob://, file:/// (required)")
	fs.StringVar(&c.rateLimit, "rate-limit", "", "cap the transfer from a remote SRC at `RATE` bytes a second: 100MiB/s, 10MB/s, 512KiB/s (KiB, MiB, GiB: powers of 1024; KB, MB, GB: of 1000); default no limit")
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` to restore into; its parent must exist (required)")
	fs.StringVar(&c.mode, "mode", "auto", "`MODE` in which files reach DIR: copy, link (hard-link tables; same file system only) or auto (link when possible; a remote SRC is always copied)")
	fs.StringVar(&c.engine, "engine", steps.EngineAuto, "the source's `ENGINE`: pebble, rocksdb or auto (detected from the source)")
	fs.StringVar(&c.verify, "verify", steps.VerifyChecksum, "how much is checked before the swap, `LEVEL`: checksum (every byte's crc32c against the backup's, or a checkpoint's measured before the copy; then the engine opens it), full (also every copy read back from the device, and every block of every table: Pebble's CheckLevels, or for RocksDB sst_dump verify, which must be on PATH), or size (link mode: linked tables' sizes and footers only, their data not read)")
	fs.Uint64Var(&c.backupID, "backup-id", 0, "the backup `N` of a RocksDB BackupEngine directory to restore (default its only backup; required where there are several)")
	fs.BoolVar(&c.force, "force", false, "replace DIR even if it is neither empty nor a database kvrflow knows (pebble, rocksdb); what it held is moved to DIR.kvrflow/quarantine, not deleted")
	fs.Var(keepOldFlag{&c.keepOld}, "keep-old", "keep the database DIR held as DIR.kvrflow/previous-JID-RUN instead of removing it ('kvrflow undo' brings it back); --keep-old=`N` keeps the N newest such generations, removing older ones; 0 (the default) keeps none and leaves generations kept earlier alone")
	fs.BoolVar(&c.noDelta, "no-delta", false, "transfer every table of the backup, even one DIR already holds identical (same name, size and crc32c); by default such tables are hard-linked from DIR into staging, leaving DIR intact")
	fs.BoolVar(&c.noExchange, "no-exchange", false, "commit with two renames instead of one renameat2(RENAME_EXCHANGE) (for tests of that plan, or a file system whose exchange you distrust)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
}

// restoreDoc is restore's --json document: the outcome (committed or
// rolled_back, empty if the run did not end), the run as journaled, the
// runs found in flight and recovered first, and the syncs (files and
// directories fsynced, journal transactions committed).
type restoreDoc struct {
	DB      string `json:"db"`
	Source  string `json:"source"`
	Outcome string `json:"outcome,omitempty"`
	*kvrflow.Result
	exitReport
}

func (d *restoreDoc) text(w io.Writer) {
	if d.Result == nil {
		return
	}
	printRecovered(w, d.Recovered)
	r := d.Run
	if r.ID == 0 {
		return
	}
	switch r.Outcome {
	case steps.OutcomeCommitted:
		sum := d.Summary
		what := "replaced the " + sum.Replaced + " database it held"
		switch sum.Replaced {
		case steps.TargetAbsent:
			what = "created it"
		case steps.TargetEmpty:
			what = "replaced an empty directory"
		case steps.TargetOther, steps.TargetMixed:
			what = "replaced what it held (kept in quarantine, --force)"
		}
		if sum.Kept != "" {
			what += ", kept as " + sum.Kept
		}
		mode := sum.Mode
		if sum.LinkFallback != "" {
			mode += ", tables copied (" + sum.LinkFallback + ")"
		}
		fmt.Fprintf(w, "restored %s into %s: %s; run %d, %s mode, %s, verify %s, %d files, %s%s, %s\n",
			r.Source, r.Target, what, r.ID, mode, sum.Engine, sum.Verify, sum.Files, humanBytes(sum.Bytes), reusedText(sum), r.End.Sub(r.Start).Round(time.Millisecond))
	case steps.OutcomeRolledBack:
		// The error line says it (each fact once).
	}
}

// reusedText says, when a restore reused files, how many bytes it
// transferred and how many it hard-linked instead: resumed from an
// interrupted run's partial copy, or delta from the replaced database.
func reusedText(sum kvrflow.Summary) string {
	if sum.Reused == 0 {
		return ""
	}
	var how []string
	if sum.Resumed > 0 {
		how = append(how, humanBytes(sum.Resumed)+" resumed")
	}
	if sum.Delta > 0 {
		how = append(how, humanBytes(sum.Delta)+" delta")
	}
	return fmt.Sprintf(" (%s transferred, %s reused)", humanBytes(sum.Transferred), strings.Join(how, ", "))
}

func (c *restoreCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--from", c.from, "--db", c.db); err != nil {
		return nil, err
	}
	// The library validates the options (steps.CheckOptions): an unknown
	// mode, engine or level is ErrBadOption, exit 2, before anything.
	mode := steps.Mode(c.mode)
	spec, err := faultSpec(c.fault, o)
	if err != nil {
		return nil, err
	}
	bar := newProgress(o, !c.json && o.stderrIsTerminal())
	log, err := c.loggerTo(bar, o.stderrIsTerminal())
	if err != nil {
		return nil, err
	}
	faults, _ := fault.Parse(spec) // checked by faultSpec
	defer reportUnfired(spec, faults, log)
	rate, err := parseRate(c.rateLimit)
	if err != nil {
		return nil, asUsage(err)
	}
	// The journal records the source as given; an absolute path still
	// means something when the run is read back from another directory.
	// A URL is passed on as it is, and shown without its secrets.
	src, shown := c.from, remote.SafeURL(c.from)
	if steps.IsURL(c.from) {
		limitMemoryForRemote(o.getenv)
	} else {
		if src, err = filepath.Abs(c.from); err != nil {
			return nil, asUsage(fmt.Errorf("--from %s: %w", c.from, err))
		}
		shown = src
		if rate > 0 {
			log.Warn().Msg("--rate-limit applies to a remote source (a URL) only; this local restore is not limited")
		}
	}
	defer sayWhenInterrupted(ctx, log)()
	res, err := kvrflow.Restore(ctx, kvrflow.Options{DB: c.db, Source: src, RateLimit: rate, Mode: mode, Engine: c.engine, Verify: c.verify, BackupID: c.backupID, Journal: c.journal,
		Force: c.force, NoExchange: c.noExchange, KeepOld: c.keepOld, NoDelta: c.noDelta,
		Faults: faults, Log: log, Progress: bar.update})
	bar.close()
	if err != nil && exitCode(err) == exitInFlight {
		err = inFlightHint(err, res, c.db)
	}
	if res == nil {
		return nil, err
	}
	return &restoreDoc{DB: absOr(c.db), Source: shown, Outcome: res.Run.Outcome, Result: res}, err
}

// sayWhenInterrupted logs, if ctx is cancelled by SIGINT or SIGTERM, what
// happens next. It returns a function that stops the watch and waits for
// it, so nothing is logged after the command's result.
func sayWhenInterrupted(ctx context.Context, log *zerolog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			log.Warn().Msg("interrupted: rolling back unless the new database is already in place; " +
				"interrupt again to stop at once (kvrflow recover then finishes)")
		case <-done:
		}
	})
	return func() { close(done); wg.Wait() }
}

// inFlightHint adds to an error that left a run in flight how to finish it.
func inFlightHint(err error, res *kvrflow.Result, db string) error {
	if res != nil && res.Run.ID != 0 && res.Run.InFlight() {
		return fmt.Errorf("%w; run %d is left in flight in state %s: 'kvrflow recover --db %s' finishes it",
			err, res.Run.ID, res.Run.State, db)
	}
	return fmt.Errorf("%w; any run left in flight is finished by 'kvrflow recover --db %s'", err, db)
}

// progress draws a progress bar of the bytes written on stderr, created
// on the first report when the total is known; off (not on a terminal, or
// --json), it draws nothing. It is also the log's writer, so that a log
// line clears the bar's line instead of running into it.
type progress struct {
	w  io.Writer
	on bool

	mu   sync.Mutex // the bar and writes to w
	bar  *progressbar.ProgressBar
	gate *gatedWriter // holds the bar back in its first second
}

func newProgress(o *stdio, on bool) *progress { return &progress{w: o.stderr, on: on} }

// Write writes a log line: it clears the bar's line first, and the next
// update draws the bar again below the line.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Clear()
	}
	return p.w.Write(b)
}

// update is the Options.Progress callback; the library calls it from the
// goroutine that writes.
func (p *progress) update(done, total int64, unit string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), // the ETA
			progressbar.OptionSetWidth(30),
			// Rates and the ETA appear only after the first second: the
			// first buffers come from the page cache, and a rate over them
			// would be absurd.
			progressbar.OptionThrottle(time.Second),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		}
		if unit == "files" {
			opts = append(opts, progressbar.OptionSetDescription("linking and copying files"), progressbar.OptionSetItsString("files"), progressbar.OptionShowIts())
		} else {
			opts = append(opts, progressbar.OptionSetDescription("writing"), progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true), progressbar.OptionUseIECUnits(true))
		}
		// Nothing is drawn in the first second: a rate over the first
		// buffers (read from the page cache) would be absurd.
		p.gate = &gatedWriter{w: p.w, from: time.Now().Add(time.Second)}
		opts[0] = progressbar.OptionSetWriter(p.gate)
		p.bar = progressbar.NewOptions64(total, opts...)
	}
	if done >= total {
		p.gate.from = time.Time{} // the last state is drawn, whenever it comes
	}
	_ = p.bar.Set64(done) // a failed write to the terminal is no reason to stop
}

// close clears the bar if the write stopped short (a finished bar has
// ended its line): what follows, the error or the summary, says how far
// the run got.
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Clear()
	}
	p.on = false
}

// gatedWriter drops what is written to it before from, then passes it on.
type gatedWriter struct {
	w    io.Writer
	from time.Time
}

func (g *gatedWriter) Write(b []byte) (int, error) {
	if time.Now().Before(g.from) {
		return len(b), nil
	}
	return g.w.Write(b)
}
