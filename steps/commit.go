package steps

import (
	"context"
	"encoding/json"
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
// is renamed to Work/old-N and staging to DB. Each rename is followed by
// fsyncs of both parents. The plan is journaled first.
func (e *Env) commit(_ context.Context, r *fsm.Run) (any, error) {
	p := CommitPlan{DB: e.Layout.DB, Staging: e.Layout.Staging(e.RunID)}
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
	if e.FS.IsDisk() {
		dbID, err1 := e.FS.FileID(p.DB)
		stID, err2 := e.FS.FileID(p.Staging)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		p.Plan, p.DBID, p.StagingID = PlanExchange, &dbID, &stID
		if err := r.Note(p); err != nil {
			return nil, err
		}
		err := e.FS.Exchange(p.Staging, p.DB)
		if !errors.Is(err, fsx.ErrExchangeUnsupported) {
			return p, err
		}
		e.Log.Info().Err(err).Msg("atomic exchange unsupported here; committing with two renames")
		p.DBID, p.StagingID = nil, nil
	}
	p.Plan, p.Old = PlanRename, e.Layout.Old(e.RunID)
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

// clearTarget makes room for a rename onto path, one of kvrflow's own
// names: removed if the journal proves it garbage, else quarantined.
func (e *Env) clearTarget(path string) error {
	ok, err := e.FS.Exists(path)
	if err != nil || !ok {
		return err
	}
	if garbage, why := e.provenGarbage(baseName(path)); garbage {
		e.Log.Info().Str("path", path).Str("proof", why).Msg("removing kvrflow leftover in the way of a rename")
		return e.FS.RemoveAllDurable(path)
	} else {
		_, err := e.quarantine(path, why)
		return err
	}
}

// lastPlan returns the last commit plan journaled for the run, if any.
func (e *Env) lastPlan() (*CommitPlan, error) {
	evs, err := e.Journal.Events(e.RunID)
	if err != nil {
		return nil, err
	}
	var plan *CommitPlan
	for _, ev := range evs {
		if ev.Event != fsm.NoteEvent || ev.From != StateCommit {
			continue
		}
		var p CommitPlan
		if err := json.Unmarshal(ev.Details, &p); err != nil {
			return nil, fmt.Errorf("%w: run %d event %d: bad commit plan: %w", ErrInconsistent, e.RunID, ev.Seq, err)
		}
		plan = &p
	}
	return plan, nil
}
