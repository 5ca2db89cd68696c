package kvrflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// Options configure Restore, Recover and Status.
type Options struct {
	// DB is the database directory to restore into. Required.
	DB string
	// Source is the backup directory (Restore only).
	Source string
	// Mode is how files reach staging: copy, link or auto (default).
	Mode steps.Mode
	// Engine is the source's engine: pebble, rocksdb or auto (default,
	// detected from the source).
	Engine string
	// Verify is how much is checked before the commit: steps.VerifyChecksum
	// (default), steps.VerifyFull or steps.VerifySize (see their docs).
	Verify string
	// BackupID picks a backup of a RocksDB BackupEngine directory; 0 means
	// the latest.
	BackupID uint64
	// Journal is the journal file; default DB.kvrflow/journal.db.
	Journal string
	// FS is the file system; default the real disk. Tests pass Pebble's
	// crashable MemFS or an errorfs.
	FS vfs.FS
	// FaultSpec is a fault spec (see kvrflow faults); empty for none.
	FaultSpec string
	// Faults, if set, is used instead of FaultSpec (tests).
	Faults *fault.Set
	// Force replaces a DB that is neither empty nor a database of a known
	// engine; its contents are moved to quarantine at the end, not
	// removed. Without it such a DB is refused (steps.ErrBadPath).
	Force bool
	// KeepOld, if above 0, keeps the database a restore replaces as
	// DB.kvrflow/previous-JID-N (Undo brings it back), and keeps at most
	// KeepOld such generations: the oldest are removed. 0 removes the
	// replaced database and leaves generations kept earlier alone.
	KeepOld int
	// NoExchange commits with two renames even where renameat2
	// RENAME_EXCHANGE works (tests of that plan; a distrusted file
	// system).
	NoExchange bool
	// LockTimeout bounds the wait for the journal's lock.
	LockTimeout time.Duration
	// Log receives progress and warnings; default discards.
	Log *zerolog.Logger
	// Progress, if set, is called as the restore writes: bytes copied
	// (unit "bytes", copy mode) or files put in place ("files", link
	// mode).
	Progress func(done, total int64, unit string)
	// Prepare, if not empty, makes Restore a cluster node's part of a
	// cluster restore named Prepare (journaled with the run): the run
	// stops in the prepared state, the new database staged, verified and
	// durable, and waits for the cluster's decision (see Prepare,
	// Resolve). Restore then returns with the run prepared.
	Prepare string
	// Decider decides a cluster node's run that recovery finds prepared
	// (Restore, Undo and Recover recover first). Without one, or when it
	// cannot decide, the run stays prepared and the error matches
	// fsm.ErrUndecided and fsm.ErrInFlight (exit 5). A run prepared by no
	// cluster restore is rolled back without asking.
	Decider fsm.Decider
}

// Recovered is what recovery did with one run found in flight.
type Recovered struct {
	Run       journal.Run `json:"run"`
	FromState string      `json:"from_state"` // the state it was interrupted in
	Decision  string      `json:"decision"`
}

// Result is the outcome of Restore.
type Result struct {
	Run       journal.Run `json:"run"`
	Recovered []Recovered `json:"recovered,omitempty"`
	Syncs     Syncs       `json:"syncs"`
	// Summary says what the run did, as it journaled it (empty for an
	// undo, and for a run that stopped before Precheck).
	Summary Summary `json:"summary"`
}

// Summary is what a restore did, from its journal: the mode Precheck
// chose (auto resolves to copy or link), the engine, the verification
// level, the files and bytes of the backup, what DB held before
// (absent: the restore created it), and why tables were copied in link
// mode if they were.
type Summary struct {
	Mode         string `json:"mode,omitempty"`
	Engine       string `json:"engine,omitempty"`
	Verify       string `json:"verify,omitempty"`
	Files        int    `json:"files,omitempty"`
	Bytes        int64  `json:"bytes,omitempty"`
	Replaced     string `json:"replaced,omitempty"`
	LinkFallback string `json:"link_fallback,omitempty"`
	Kept         string `json:"kept,omitempty"`
	// BroughtBack is the kept database an undo brought back.
	BroughtBack string `json:"brought_back,omitempty"`
}

// summarize reads what run id journaled into a Summary.
func summarize(j *journal.Journal, id uint64) Summary {
	var sum Summary
	evs, err := j.Events(id)
	if err != nil {
		return sum
	}
	for _, ev := range evs {
		switch ev.Event {
		case "checked":
			var d steps.PrecheckDetails
			if json.Unmarshal(ev.Details, &d) == nil {
				sum.Mode, sum.Engine, sum.Verify, sum.Files, sum.Bytes, sum.Replaced = string(d.Mode), d.Engine, d.Verify, d.Files, d.Bytes, d.Target
			}
			var u steps.UndoDetails
			if json.Unmarshal(ev.Details, &u) == nil && u.Previous != nil {
				sum.BroughtBack = u.Previous.Path
			}
		case "written":
			var d steps.WriteDetails
			if json.Unmarshal(ev.Details, &d) == nil {
				sum.LinkFallback = d.LinkFallback
			}
		case "finished":
			var d steps.FinishDetails
			if json.Unmarshal(ev.Details, &d) == nil && d.Kept != nil {
				sum.Kept = d.Kept.Path
			}
		}
	}
	return sum
}

// Syncs counts the durable writes of a Restore: files and directories
// fsynced through the file-system seam, and journal transactions
// committed (each two fdatasyncs of journal.db).
type Syncs struct {
	Files          int64 `json:"files"`
	Dirs           int64 `json:"dirs"`
	JournalCommits int64 `json:"journal_commits"`
}

// session is an open journal and kvrflow's lock on one database.
type session struct {
	opts   Options
	layout steps.Layout
	fs     *fsx.FS
	log    zerolog.Logger
	j      *journal.Journal
	lock   io.Closer
}

func (o Options) logger() zerolog.Logger {
	if o.Log != nil {
		return *o.Log
	}
	return zerolog.Nop()
}

// open validates the paths, creates DB.kvrflow if create is set, takes
// kvrflow's lock on DB and opens the journal. With create unset and no
// DB.kvrflow, it returns a session with no journal.
func open(opts Options, create bool) (*session, error) {
	layout, err := steps.NewLayout(opts.DB)
	if err != nil {
		return nil, err
	}
	faults := opts.Faults
	if faults == nil {
		if faults, err = fault.Parse(opts.FaultSpec); err != nil {
			return nil, err
		}
	}
	faults.SetLog(opts.logger()) // "fault point fired": tests wait for it
	v := opts.FS
	if v == nil {
		v = vfs.Default
	}
	s := &session{opts: opts, fs: fsx.New(v, faults), log: opts.logger()}
	if opts.NoExchange {
		s.fs.DisableExchange()
	}
	s.layout = layout.Resolved(s.fs.Resolve)
	layout = s.layout
	if fi, err := s.fs.Stat(layout.Parent); err != nil {
		return nil, fmt.Errorf("%w: database parent: %w", steps.ErrBadPath, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s: not a directory", steps.ErrBadPath, layout.Parent)
	}
	if err := steps.CheckWork(s.fs, layout); err != nil {
		return nil, err
	}
	if err := steps.CheckJournalPath(s.fs, layout, opts.Journal); err != nil {
		return nil, err
	}
	exists, err := s.fs.Exists(layout.Work)
	if err != nil {
		return nil, err
	}
	if !exists && !create {
		return s, nil
	}
	if err := s.fs.EnsureDir(layout.Work); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("%w: create kvrflow's directory: %w", steps.ErrBadPath, err)
		}
		return nil, err
	}
	if s.lock, err = s.fs.Lock(layout.Lock()); err != nil {
		if errors.Is(err, fsx.ErrNotRegular) {
			return nil, fmt.Errorf("%w: %w", steps.ErrBadPath, err)
		}
		if errors.Is(err, fsx.ErrLockHeld) {
			return nil, fmt.Errorf("%w: another kvrflow works on %s (it holds %s)", steps.ErrInUse, layout.DB, layout.Lock())
		}
		return nil, err
	}
	jpath := opts.Journal
	if jpath == "" {
		jpath = layout.Journal()
	}
	if !create {
		// Recovery never creates a journal: a mistyped --journal must not
		// start an empty one and report nothing to recover.
		// (bbolt opens the journal on the real disk, whatever the seam's
		// file system: so is it looked for.)
		if _, err := os.Lstat(jpath); isNotExist(err) {
			if opts.Journal != "" {
				s.log.Warn().Str("journal", opts.Journal).Msg("no kvrflow journal at this path (mistyped?); none is created: nothing it recorded to recover")
			}
			return s, nil
		}
	}
	if s.j, err = journal.Open(jpath, journal.Options{Timeout: opts.LockTimeout, Faults: faults}); err != nil {
		s.lock.Close()
		return nil, err
	}
	if room, err := s.j.Reserved(); err != nil {
		// The journal works; but on a disk that fills up it may not take
		// the records a rollback needs (see DESIGN.md, Full disks).
		s.log.Warn().Err(err).Int64("reserved_bytes", room).Str("journal", jpath).Msg("journal space reserve not complete")
	}
	return s, nil
}

func (s *session) close() error {
	var errs []error
	if s.j != nil {
		errs = append(errs, s.j.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

func (s *session) env(id uint64) *steps.Env {
	return &steps.Env{FS: s.fs, Layout: s.layout, Journal: s.j, Log: s.log, RunID: id,
		Source: s.opts.Source, Engine: s.opts.Engine, BackupID: s.opts.BackupID, Mode: s.opts.Mode, Verify: s.opts.Verify,
		Force: s.opts.Force, KeepOld: s.opts.KeepOld, Progress: s.opts.Progress, Prepare: s.opts.Prepare}
}

// recoverAll finishes or rolls back every run in flight for the database.
func (s *session) recoverAll(ctx context.Context) ([]Recovered, error) {
	if s.j == nil {
		return nil, nil
	}
	runs, err := inFlightFor(s.fs, s.j, s.layout.DB)
	if err != nil {
		return nil, err
	}
	var out []Recovered
	for _, r := range runs {
		env := s.env(r.ID)
		// No step acts, and nothing is journaled, while a server has the
		// database (or the old one, wherever the run left it) open.
		def, ok := steps.Workflows[r.Kind]
		if !ok {
			return out, fmt.Errorf("%w: run %d in flight is of kind %q, which this kvrflow does not know", journal.ErrCorrupt, r.ID, r.Kind)
		}
		if dec := def.Decide(r.State); dec != fsm.Nothing {
			if err := env.LockForRecovery(); err != nil {
				return out, fmt.Errorf("recover run %d (%s): %w", r.ID, r.State, err)
			}
		}
		run := def.Load(s.j, r.ID, r.State, s.fs.Faults(), s.log)
		s.log.Warn().Uint64("run", r.ID).Str("kind", r.Kind).Str("state", r.State).Str("decision", def.Decide(r.State).String()).Msg("recovering interrupted run")
		dec, err := func() (fsm.Decision, error) {
			defer env.Close() // also when a crash test panics out of the run
			return run.RecoverWith(ctx, env.StepsOf(r.Kind), steps.PreparedDecider(s.j, s.opts.Decider))
		}()
		if err != nil {
			return out, fmt.Errorf("recover run %d (%s): %w", r.ID, dec, err)
		}
		done, err := s.j.Run(r.ID)
		if err != nil {
			return out, err
		}
		out = append(out, Recovered{Run: done, FromState: r.State, Decision: dec.String()})
	}
	return out, nil
}

// Restore recovers any run left in flight for opts.DB, then restores
// opts.Source into it. On success DB holds the backup's database. On error
// DB holds the database it held before: errors.Is(err, fsm.ErrRolledBack)
// says the run was rolled back; errors matching steps.ErrBadSource,
// ErrBadPath, ErrBadOption, ErrNoSpace or ErrInUse say what was wrong with
// the input.
// An error matching none of these after the run began leaves the run in
// flight in the journal; Recover finishes it.
func Restore(ctx context.Context, opts Options) (*Result, error) {
	p, err := restore(ctx, opts)
	if p == nil {
		return nil, err
	}
	p.Close()
	return p.Result, err
}

// restore is Restore that returns, for a run that stopped prepared, the
// session and run still open, their locks held.
func restore(ctx context.Context, opts Options) (*Prepared, error) {
	if opts.Source != "" {
		abs, err := filepath.Abs(opts.Source)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", steps.ErrBadPath, opts.Source, err)
		}
		opts.Source = abs
	}
	if err := checkInput(opts); err != nil {
		return nil, err
	}
	s, err := open(opts, true)
	if err != nil {
		return nil, err
	}
	p := &Prepared{s: s, Result: &Result{}}
	defer func() {
		if p.run == nil {
			p.Close()
		}
	}()
	res := p.Result
	if res.Recovered, err = s.recoverAll(ctx); err != nil {
		return p, err
	}
	// The partial copy an interrupted run set aside goes before the free
	// space is checked again.
	{
		env := s.env(0)
		_, _, err := env.RemoveTrash()
		env.Close()
		if err != nil {
			return p, err
		}
	}
	// Another journal's run in flight on DB: refused before a run is
	// journaled (Precheck checks again inside the run).
	if err := steps.CheckForeign(s.fs, s.layout, s.j.ID()); err != nil {
		return p, err
	}
	mode := opts.Mode
	if mode == "" {
		mode = steps.ModeAuto
	}
	engine := opts.Engine
	if engine == "" {
		engine = steps.EngineAuto
	}
	r, err := s.j.Begin(journal.Run{Kind: steps.KindRestore, Source: opts.Source, Target: s.layout.DB, Mode: string(mode),
		Engine: engine, State: steps.Restore.Start})
	if err != nil {
		return p, err
	}
	env := s.env(r.ID)
	run := steps.Restore.Load(s.j, r.ID, r.State, s.fs.Faults(), s.log)
	s.log.Info().Uint64("run", r.ID).Str("source", opts.Source).Str("db", s.layout.DB).Str("prepare", opts.Prepare).Msg("restore started")
	stop := ""
	if opts.Prepare != "" {
		stop = steps.StatePrepared
	}
	// The run's locks are released when restore returns (or panics out
	// of a crash test), unless the run stopped prepared: they are then
	// held until the decision (Prepared).
	p.env = env
	runErr := run.ExecuteUntil(ctx, env.Steps(), stop)
	if runErr == nil && run.State() == steps.StatePrepared {
		p.run = run
	}
	res.Syncs.Files, res.Syncs.Dirs = s.fs.Syncs()
	res.Syncs.JournalCommits = s.j.Commits()
	if res.Run, err = s.j.Run(r.ID); err != nil {
		return p, errors.Join(runErr, err)
	}
	res.Summary = summarize(s.j, r.ID)
	if runErr != nil && ctx.Err() != nil && IsRolledBack(runErr) {
		runErr = &interrupted{err: runErr, db: s.layout.DB}
	}
	return p, runErr
}

// interrupted is the error of a restore stopped by its context (SIGINT,
// SIGTERM) and rolled back: it says so, rather than the step's "context
// canceled", and matches what err matches.
type interrupted struct {
	err error
	db  string
}

func (e *interrupted) Error() string {
	return "interrupted, rolled back: " + e.db + " holds the database it held before (a partial copy set aside is removed by the next kvrflow restore, or kvrflow recover)"
}

func (e *interrupted) Unwrap() error { return e.err }

// Undo recovers any run left in flight for opts.DB, then brings back the
// newest database the journal keeps for it (see Options.KeepOld): it takes
// DB's place, and the database it displaces is kept in turn, so a second
// Undo is a redo. With nothing kept it fails with steps.ErrNothingKept,
// having changed nothing. On error DB holds what it held before, as
// Restore's errors say.
func Undo(ctx context.Context, opts Options) (*Result, error) {
	if err := steps.CheckOptions("", "", "", opts.KeepOld); err != nil {
		return nil, err
	}
	s, err := open(opts, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.j == nil {
		return nil, fmt.Errorf("%w: %s has no kvrflow journal (%s does not exist)", steps.ErrNothingKept, s.layout.DB, s.layout.Work)
	}
	res := &Result{}
	if res.Recovered, err = s.recoverAll(ctx); err != nil {
		return res, err
	}
	if err := steps.CheckForeign(s.fs, s.layout, s.j.ID()); err != nil {
		return res, err
	}
	if err := steps.CheckDBPath(s.fs, s.layout); err != nil {
		return res, err
	}
	// Nothing kept is refused before a run is journaled (Precheck checks
	// again inside the run).
	if kept, _, err := steps.ListKept(s.fs, s.layout, s.j); err != nil {
		return res, err
	} else if len(kept) == 0 {
		return res, fmt.Errorf("%w: the journal %s keeps no database for %s (restore --keep-old keeps the one it replaces)", steps.ErrNothingKept, s.j.Path(), s.layout.DB)
	}
	r, err := s.j.Begin(journal.Run{Kind: steps.KindUndo, Target: s.layout.DB, State: steps.Undo.Start})
	if err != nil {
		return res, err
	}
	env := s.env(r.ID)
	defer env.Close()
	run := steps.Undo.Load(s.j, r.ID, r.State, s.fs.Faults(), s.log)
	s.log.Info().Uint64("run", r.ID).Str("db", s.layout.DB).Msg("undo started")
	runErr := run.Execute(ctx, env.UndoSteps())
	res.Syncs.Files, res.Syncs.Dirs = s.fs.Syncs()
	res.Syncs.JournalCommits = s.j.Commits()
	if res.Run, err = s.j.Run(r.ID); err != nil {
		return res, errors.Join(runErr, err)
	}
	res.Summary = summarize(s.j, r.ID)
	return res, runErr
}

// checkInput refuses unknown options, bad paths, a missing or malformed
// source and a verification level whose tool is missing (sst_dump) before
// anything is created (not even DB.kvrflow): the checks Precheck repeats
// inside the run that need no checksums.
func checkInput(opts Options) error {
	if err := steps.CheckOptions(opts.Mode, opts.Engine, opts.Verify, opts.KeepOld); err != nil {
		return err
	}
	layout, err := steps.NewLayout(opts.DB)
	if err != nil {
		return err
	}
	v := opts.FS
	if v == nil {
		v = vfs.Default
	}
	seam := fsx.New(v, nil)
	layout = layout.Resolved(seam.Resolve)
	// kvrflow's directory first: a symbolic link there would otherwise be
	// reported as whatever it points at.
	if err := steps.CheckWork(seam, layout); err != nil {
		return err
	}
	src, err := steps.CheckPaths(seam, layout, opts.Source)
	if err != nil {
		return err
	}
	if err := steps.CheckJournalPath(seam, layout, opts.Journal); err != nil {
		return err
	}
	if _, err := steps.CheckTarget(seam, layout, opts.Force); err != nil {
		return err
	}
	source, err := steps.OpenSource(seam, src, opts.Engine, opts.BackupID)
	if err != nil {
		return err
	}
	if opts.BackupID != 0 && source.Kind != steps.KindRocksdb {
		return fmt.Errorf("%w: --backup-id %d: %s is a %s, not a RocksDB BackupEngine directory", steps.ErrBadOption, opts.BackupID, src, source.Kind)
	}
	if err := steps.CheckSSTDump(source.Engine, opts.Verify); err != nil {
		return err
	}
	// Free space, before anything is made: a refused restore must not
	// take space (a new journal reserves journal.DefaultReserve).
	mode, err := steps.ResolveMode(seam, opts.Mode, src, layout.Parent)
	if err != nil {
		return err
	}
	if v, _ := steps.ParseVerify(opts.Verify); v == steps.VerifySize && mode == steps.ModeCopy {
		l := opts.logger()
		l.Warn().Msg("--verify size in copy mode reads every byte anyway: each copy is checked against the backup's crc32c, as at --verify checksum")
	}
	need := steps.SpaceNeeded(source, mode)
	jpath := opts.Journal
	if jpath == "" {
		jpath = layout.Journal()
	}
	if _, err := os.Stat(jpath); err != nil {
		need += journal.DefaultReserve
	}
	if _, err := steps.CheckSpace(seam, layout.Parent, need); err != nil && errors.Is(err, steps.ErrNoSpace) {
		// An interrupted run's partial copy, set aside, is freed before
		// the run begins (Restore removes it by proof): Precheck decides.
		if names, lerr := seam.List(layout.Work); lerr == nil {
			for _, n := range names {
				if rd, ok := steps.ParseRunDir(n); ok && rd.Kind == "trash" {
					return nil
				}
			}
		}
		return err
	}
	return nil
}

// Recover finishes or rolls back whatever is in flight for opts.DB. With
// nothing in flight (or no journal at all) it does nothing and returns no
// error. A Go server calls it at start-up, before opening its database.
func Recover(ctx context.Context, opts Options) ([]Recovered, error) {
	s, err := open(opts, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	done, err := s.recoverAll(ctx)
	if err != nil {
		return done, err
	}
	if s.j != nil {
		// The partial staging an interrupted restore set aside.
		env := s.env(0)
		removed, quarantined, err := env.RemoveTrash()
		env.Close()
		if err != nil {
			return done, err
		}
		for _, q := range quarantined {
			rd, _ := steps.ParseRunDir(filepath.Base(q.From))
			r, err := s.j.Run(rd.Run)
			if err != nil {
				return done, err
			}
			done = append(done, Recovered{Run: r, FromState: r.State, Decision: "moved what stood at its partial copy's name to quarantine, " + q.To + ": " + q.Reason})
		}
		for _, p := range removed {
			rd, _ := steps.ParseRunDir(filepath.Base(p))
			r, err := s.j.Run(rd.Run)
			if err != nil {
				return done, err
			}
			done = append(done, Recovered{Run: r, FromState: r.State, Decision: "removed the partial copy it set aside when interrupted, " + p})
		}
	}
	// Runs of another journal in flight on DB: only that journal can
	// finish them, and "nothing to recover" would be a lie.
	jid := ""
	if s.j != nil {
		jid = s.j.ID()
	}
	return done, steps.CheckForeign(s.fs, s.layout, jid)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// IsRolledBack reports whether err means the restore failed and was
// rolled back, leaving the database as it was.
func IsRolledBack(err error) bool { return errors.Is(err, fsm.ErrRolledBack) }

// inFlightFor returns the runs of j in flight for the database db, by
// path or by the identity of its kvrflow directory (the same database
// reached through a bind mount is one database).
func inFlightFor(seam *fsx.FS, j *journal.Journal, db string) ([]journal.Run, error) {
	all, err := j.InFlight("")
	if err != nil {
		return nil, err
	}
	var out []journal.Run
	for _, r := range all {
		if steps.SameDB(seam, r.Target, db) {
			out = append(out, r)
		}
	}
	return out, nil
}
