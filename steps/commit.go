package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// Commit plans, journaled in a note before Commit acts.
const (
	PlanFresh    = "fresh"    // DB did not exist: rename staging to DB
	PlanExchange = "exchange" // renameat2(RENAME_EXCHANGE) staging <-> DB
	PlanRename   = "rename"   // rename DB to Work/old-N, then staging to DB
)

// CommitPlan is the note Commit journals before it touches DB. Rollback
// and Finish read the last one to learn what Commit may have done.
type CommitPlan struct {
	Plan      string      `json:"plan"`
	DB        string      `json:"db"`
	Staging   string      `json:"staging"`
	Old       string      `json:"old,omitempty"`
	DBID      *fsx.FileID `json:"db_id,omitempty"`
	StagingID *fsx.FileID `json:"staging_id,omitempty"`
}

// commit makes the staged database DB. On Linux's real disk the two
// directories are swapped in one renameat2(RENAME_EXCHANGE); elsewhere DB
// is renamed to Work/old-JID-N and staging to DB. Each rename is followed
// by fsyncs of both parents. The plan, with the identities of DB and
// staging where the file system has them, is journaled first: Rollback and
// Finish act on a directory only if it is the one the plan names.
func (e *Env) commit(_ context.Context, r *fsm.Run) (any, error) {
	n, err := e.notes(e.RunID)
	if err != nil {
		return nil, err
	}
	p := CommitPlan{DB: e.Layout.DB, Staging: e.stagingPath(n)}
	if p.StagingID, err = e.FS.DirID(p.Staging); err != nil {
		return nil, err
	}
	if n.staging != nil {
		if same, known := fsx.SameID(p.StagingID, n.staging.ID); known && !same {
			return nil, fmt.Errorf("%w: %s is not the staging directory Write made (inode %d, journaled %d)", ErrInconsistent, p.Staging, p.StagingID.Ino, n.staging.ID.Ino)
		}
	}
	dbExists, err := e.FS.Exists(p.DB)
	if err != nil {
		return nil, err
	}
	if !dbExists {
		p.Plan = PlanFresh
		if err := r.Note(p); err != nil {
			return nil, err
		}
		return p, e.FS.RenameDurable(p.Staging, p.DB)
	}
	if p.DBID, err = e.FS.DirID(p.DB); err != nil {
		return nil, err
	}
	if e.FS.CanExchange() && p.DBID != nil && p.StagingID != nil {
		p.Plan = PlanExchange
		if err := r.Note(p); err != nil {
			return nil, err
		}
		err := e.FS.Exchange(p.Staging, p.DB)
		if !errors.Is(err, fsx.ErrExchangeUnsupported) {
			return p, err
		}
		e.Log.Info().Err(err).Msg("atomic exchange unsupported here; committing with two renames")
	}
	p.Plan, p.Old = PlanRename, e.Layout.Old(e.jid(), e.RunID)
	if err := r.Note(p); err != nil {
		return nil, err
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
