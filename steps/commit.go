package steps

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// The commit protocol: how a directory prepared beside DB (the restore's
// staging, or the database an undo brings back) takes DB's place, how that
// is undone, and what becomes of the database it displaced. Both
// workflows, restore and undo, commit through here; their Rollback and
// Finish call undoPlan and finishPlan.
//
// Commit journals a plan (a note) before it touches DB, with the
// identities (device, inode) of DB and of the incoming directory where the
// file system has them, then carries it out. The commit point is the
// record commit -committed-> finish, written only after the plan is
// carried out and both parents fsynced.
//
// Crashed here -> recovery does this (DESIGN.md has the whole table):
//
//	commit, no note        Rollback: nothing was moved; restore removes staging by proof
//	note fresh             DB present and incoming absent: rename DB back if it is the
//	                       incoming directory (identity), else leave DB alone; both
//	                       present: quarantine DB (a duplicate); then as above
//	note exchange          identity of DB = incoming's: exchange back; = DB's: nothing
//	                       was done; other: stop, exit 4 (the disk contradicts the journal)
//	note rename            until old is gone: DB and incoming both present -> quarantine
//	                       DB (a duplicate); DB present and the incoming directory ->
//	                       rename it back to incoming (not it -> quarantine it); else
//	                       rename old -> DB
//	finish                 Finish: DB must be the incoming directory (identity, every
//	                       plan; else exit 4, nothing removed); the displaced database
//	                       (at incoming's name after an exchange, at old after renames)
//	                       is kept as previous-JID-N (undo, restore --keep-old) or removed
//	                       if it is the directory the plan recorded as DB, else quarantined
//
// Each action is chosen from what is on disk now, so every step may be run
// again after a crash inside it.

// Commit plans, journaled in a note before Commit acts.
const (
	PlanFresh    = "fresh"    // DB did not exist: rename incoming to DB
	PlanExchange = "exchange" // renameat2(RENAME_EXCHANGE) incoming <-> DB
	PlanRename   = "rename"   // rename DB to Work/old-JID-N, then incoming to DB
)

// CommitPlan is the note Commit journals before it touches DB. Rollback
// and Finish read the last one to learn what Commit may have done. Staging
// names the incoming directory: a restore's staging, or the kept database
// an undo brings back.
type CommitPlan struct {
	Plan      string      `json:"plan"`
	DB        string      `json:"db"`
	Staging   string      `json:"staging"`
	Old       string      `json:"old,omitempty"`
	DBID      *fsx.FileID `json:"db_id,omitempty"`
	StagingID *fsx.FileID `json:"staging_id,omitempty"`
}

// commit is the restore's Commit step: the staged database takes DB's
// place. It first takes the staged database's LOCK (creating it, as any
// database has one) and holds it to the end of the run: a server started
// between the swap and the end of the run finds the new database locked
// and cannot write to a database the run may still roll back.
func (e *Env) commit(_ context.Context, r *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	if n.plan != nil {
		// A cluster node's run resumed in commit after a crash (or a
		// failed attempt): its decision is commit, so it goes forward.
		// Whatever part of the earlier attempt's plan the disk shows done
		// is undone first (as Rollback would), then the commit is made
		// afresh: each attempt starts from DB and staging as they were.
		var disp disposal
		if err := e.undoPlan(n.plan, &disp); err != nil {
			return nil, err
		}
	}
	var want *fsx.FileID
	if n.staging != nil {
		want = n.staging.ID
	}
	staging := e.stagingPath(n)
	if err := e.holdLock(filepath.Join(staging, "LOCK")); err != nil {
		return nil, err
	}
	if err := e.recheckLinked(); err != nil {
		return nil, err
	}
	return e.swapIn(r, staging, want)
}

// holdLock takes path's lock and holds it until the run ends (Close). A
// lock recovery took already (LockForRecovery) is held.
func (e *Env) holdLock(path string) error {
	if e.held[path] {
		return nil
	}
	if id, err := e.FS.FileID(path); err == nil && e.held[fmt.Sprintf("id:%d:%d", id.Dev, id.Ino)] {
		return nil
	}
	l, err := e.FS.Lock(path)
	if errors.Is(err, fsx.ErrLockHeld) {
		return fmt.Errorf("%w: %s is held by another process: %w", ErrInUse, path, err)
	}
	if err != nil {
		return err
	}
	if e.dbLock == nil {
		e.dbLock = l
	} else {
		e.dbLock = multiCloser{e.dbLock, l}
	}
	return nil
}

// recheckLinked checks, right before the commit, that every table Write
// hard-linked is still the file Precheck checked (inode, size, mtime): a
// table of the backup rewritten or truncated since would become the live
// database's. (After the commit the database shares those inodes with the
// backup: the backup's tables must not be changed in place.)
func (e *Env) recheckLinked() error {
	if e.src == nil || e.mode != ModeLink || e.linkFallback.Load() != nil {
		return nil
	}
	for _, f := range e.src.Files {
		if !f.Linkable {
			continue
		}
		id, err := e.FS.Ident(f.Path)
		if err != nil {
			return err
		}
		if !id.Equal(f.ident) {
			return fmt.Errorf("%w: %s: changed after it was checked and linked (now %d bytes; was %d): the staged database would share it", ErrChecksum, f.Path, id.Size, f.ident.Size)
		}
	}
	return nil
}

// swapIn makes the directory incoming DB. On Linux's real disk the two
// directories are swapped in one renameat2(RENAME_EXCHANGE); elsewhere (or
// with exchange disabled) DB is renamed to Work/old-JID-N and incoming to
// DB; a DB that does not exist is simply replaced by incoming. Each rename
// is followed by fsyncs of both parents. incoming must be the directory
// whose identity is want (when known). The plan is journaled first.
func (e *Env) swapIn(r *fsm.Run, incoming string, want *fsx.FileID) (CommitPlan, error) {
	p := CommitPlan{DB: e.Layout.DB, Staging: incoming}
	var err error
	if p.StagingID, err = e.FS.DirID(p.Staging); err != nil {
		return p, err
	}
	if same, known := fsx.SameID(p.StagingID, want); known && !same {
		return p, fmt.Errorf("%w: %s is not the directory the journal recorded (inode %d, journaled %d)", ErrInconsistent, p.Staging, p.StagingID.Ino, want.Ino)
	}
	dbExists, err := e.FS.Exists(p.DB)
	if err != nil {
		return p, err
	}
	if !dbExists {
		p.Plan = PlanFresh
		if err := r.Note(p); err != nil {
			return p, err
		}
		return p, e.FS.RenameDurable(p.Staging, p.DB)
	}
	if p.DBID, err = e.FS.DirID(p.DB); err != nil {
		return p, err
	}
	if e.FS.CanExchange() && p.DBID != nil && p.StagingID != nil {
		p.Plan = PlanExchange
		if err := r.Note(p); err != nil {
			return p, err
		}
		err := e.FS.Exchange(p.Staging, p.DB)
		if !errors.Is(err, fsx.ErrExchangeUnsupported) {
			return p, err
		}
		e.Log.Info().Err(err).Msg("atomic exchange unsupported here; committing with two renames")
	}
	p.Plan, p.Old = PlanRename, e.Layout.Old(e.jid(), e.RunID)
	if err := r.Note(p); err != nil {
		return p, err
	}
	if err := e.clearTarget(p.Old); err != nil {
		return p, err
	}
	if err := e.FS.RenameDurable(p.DB, p.Old); err != nil {
		return p, err
	}
	return p, e.FS.RenameDurable(p.Staging, p.DB)
}

// clearTarget makes room for a rename onto path, one of this run's own
// names in Work. Nothing of this run is there before the rename (the plan
// was journaled just now), so whatever is there is not the run's: it is
// quarantined, intact.
func (e *Env) clearTarget(path string) error {
	ok, err := e.FS.Exists(path)
	if err != nil || !ok {
		return err
	}
	_, err = e.quarantine(path, "found at "+path+" before run "+fmt.Sprint(e.RunID)+" renamed the old database there")
	return err
}

// undoPlan undoes what the disk shows of plan p: afterwards DB holds the
// database it held before the commit (or does not exist, for PlanFresh)
// and the incoming directory is back at p.Staging. Safe to run again.
func (e *Env) undoPlan(p *CommitPlan, d *disposal) error {
	switch p.Plan {
	case PlanFresh:
		return e.undoFresh(p, d)
	case PlanExchange:
		return e.undoExchange(p)
	case PlanRename:
		return e.undoRename(p, d)
	}
	return fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, p.Plan)
}

// undoFresh: DB did not exist before the run. If the incoming directory is
// now DB, it moves back. A DB beside a still-present incoming directory is
// not the run's (or is a duplicate a power loss left): it is quarantined.
// A DB that is not the incoming directory (its identity says so) was put
// there by someone else: it is left alone.
func (e *Env) undoFresh(p *CommitPlan, d *disposal) error {
	db, staging := p.DB, p.Staging
	dbOK, err := e.FS.Exists(db)
	if err != nil || !dbOK {
		return err
	}
	stOK, err := e.FS.Exists(staging)
	if err != nil {
		return err
	}
	if stOK {
		q, err := e.quarantine(db, "appeared at the database path during a restore into a new directory")
		if err == nil {
			d.quarantined = append(d.quarantined, q)
		}
		return err
	}
	id, err := e.FS.DirID(db)
	if err != nil {
		return err
	}
	if same, known := fsx.SameID(id, p.StagingID); known && !same {
		e.Log.Warn().Str("db", db).Msg("the database path holds a directory this run did not make; left as it is")
		return nil
	}
	return e.FS.RenameDurable(db, staging)
}

// undoExchange swaps back if DB is the incoming directory. DB is
// identified by its inode, journaled before the exchange.
func (e *Env) undoExchange(p *CommitPlan) error {
	id, err := e.FS.FileID(p.DB)
	if err != nil {
		return err
	}
	switch id {
	case *p.DBID:
		return nil
	case *p.StagingID:
		return e.FS.Exchange(p.Staging, p.DB)
	default:
		return fmt.Errorf("%w: %s is neither the old database (inode %d) nor the incoming one (inode %d): inode %d",
			ErrInconsistent, p.DB, p.DBID.Ino, p.StagingID.Ino, id.Ino)
	}
}

// undoRename moves the old database back from Work/old-JID-N. The renames
// sync the destination's directory before the source's, so after a power
// loss an entry may show under both names, never under neither; each pass
// reads the disk and takes one step toward DB = old, until old-N is gone.
// A DB that is neither old-N's twin nor the incoming directory (by
// identity, where the file system has one) is quarantined, not moved.
func (e *Env) undoRename(p *CommitPlan, d *disposal) error {
	for {
		oldOK, err1 := e.FS.Exists(p.Old)
		dbOK, err2 := e.FS.Exists(p.DB)
		stOK, err3 := e.FS.Exists(p.Staging)
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				return err
			}
		}
		switch {
		case !oldOK && dbOK:
			return nil // DB is the old database
		case !oldOK:
			return fmt.Errorf("%w: neither %s nor %s exists", ErrInconsistent, p.DB, p.Old)
		case dbOK && stOK:
			// old-N holds the old database; DB is a duplicate a power loss
			// left of a rename whose source entry was not yet removed.
			q, err := e.quarantine(p.DB, "duplicate left at the database path by an interrupted commit; "+p.Old+" holds the old database")
			if err != nil {
				return err
			}
			d.quarantined = append(d.quarantined, q)
		case dbOK:
			id, err := e.FS.DirID(p.DB)
			if err != nil {
				return err
			}
			if same, known := fsx.SameID(id, p.StagingID); known && !same {
				q, err := e.quarantine(p.DB, "found at the database path during the rollback of a commit; not the incoming database ("+p.Old+" holds the old one)")
				if err != nil {
					return err
				}
				d.quarantined = append(d.quarantined, q)
				continue
			}
			if err := e.FS.RenameDurable(p.DB, p.Staging); err != nil {
				return err
			}
		default:
			if err := e.FS.RenameDurable(p.Old, p.DB); err != nil {
				return err
			}
		}
	}
}

// FinishDetails is journaled when Finish is done.
type FinishDetails struct {
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
	// Kept is the displaced database, kept as previous-JID-N (restore
	// --keep-old, and every undo).
	Kept *Kept `json:"kept,omitempty"`
}

// Kept is a database kept in Work after it was replaced: the run that
// kept it owns it, by this identity.
type Kept struct {
	Path string      `json:"path"`
	ID   *fsx.FileID `json:"id,omitempty"`
	// Files are its files (name and size) when it was kept: retention
	// removes it only if it still holds exactly these (a server, or the
	// operator, may have written to it since).
	Files []WrittenFile `json:"files,omitempty"`
}

// finishPlan runs after the commit point. It first checks, by identity
// where the file system has one, that DB is the incoming directory, and
// does nothing if it is not. Then the displaced database (at the incoming
// name after an exchange, at old after renames) is kept as previous-JID-N
// when keep is set; else removed if it is the directory the plan recorded
// as DB; a target that was no database (TargetOther, replaced with Force)
// is quarantined instead. A copy of the incoming directory a power loss
// left beside the new DB (in-memory file systems) is removed by proof
// when incoming is given (restore: the staging note), else left (undo).
// Safe to run again.
func (e *Env) finishPlan(n runNotes, keep bool, incoming *proof) (FinishDetails, error) {
	var fd FinishDetails
	plan := n.plan
	if plan == nil {
		return fd, fmt.Errorf("%w: run %d committed without a commit plan", ErrInconsistent, e.RunID)
	}
	ok, err := e.FS.Exists(e.Layout.DB)
	if err != nil {
		return fd, err
	}
	if !ok {
		return fd, fmt.Errorf("%w: run %d committed but %s is missing", ErrInconsistent, e.RunID, e.Layout.DB)
	}
	id, err := e.FS.DirID(e.Layout.DB)
	if err != nil {
		return fd, err
	}
	if same, known := fsx.SameID(id, plan.StagingID); known && !same {
		return fd, fmt.Errorf("%w: run %d committed but %s is not the staged directory (inode %d, want %d)",
			ErrInconsistent, e.RunID, e.Layout.DB, id.Ino, plan.StagingID.Ino)
	}
	var oldAt string // where the displaced database is now, if the plan kept one
	switch plan.Plan {
	case PlanExchange:
		oldAt = plan.Staging
	case PlanRename:
		oldAt = plan.Old
	case PlanFresh:
	default:
		return fd, fmt.Errorf("%w: run %d: unknown commit plan %q", ErrInconsistent, e.RunID, plan.Plan)
	}
	var disp disposal
	done := func(err error) (FinishDetails, error) {
		fd.Removed, fd.Quarantined = disp.removed, disp.quarantined
		return fd, err
	}
	if oldAt != "" {
		switch {
		case n.target == TargetOther || n.target == TargetMixed:
			// Replaced with Force: not a database; the operator keeps it.
			if ok, err := e.FS.Exists(oldAt); err != nil {
				return done(err)
			} else if ok {
				q, err := e.quarantine(oldAt, "the directory run "+fmt.Sprint(e.RunID)+" replaced with --force held no database; kept intact")
				if err != nil {
					return done(err)
				}
				disp.quarantined = append(disp.quarantined, q)
			}
		case keep:
			k, err := e.keep(oldAt, plan.DBID)
			fd.Kept = k
			if err != nil {
				return done(err)
			}
		default:
			if err := e.removeProven(oldAt, plan.DBID, true, fmt.Sprintf("the database run %d replaced", e.RunID), &disp); err != nil {
				return done(err)
			}
		}
	}
	if plan.Plan != PlanExchange && incoming != nil {
		if err := e.removeProven(plan.Staging, incoming.id, incoming.recorded, fmt.Sprintf("run %d's staging directory", e.RunID), &disp); err != nil {
			return done(err)
		}
	}
	return done(nil)
}

// proof is what the journal recorded of a directory: its identity (nil
// where the file system has none) and whether there is a record at all.
type proof struct {
	id       *fsx.FileID
	recorded bool
}
