package kvrflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// Quarantine lists what kvrflow moved aside for opts.DB instead of
// deleting it, oldest first. It changes nothing.
func Quarantine(opts Options) ([]steps.QuarantineEntry, error) {
	layout, err := steps.NewLayout(opts.DB)
	if err != nil {
		return nil, err
	}
	v := opts.FS
	if v == nil {
		v = vfs.Default
	}
	seam := fsx.New(v, nil)
	return steps.ListQuarantine(seam, layout.Resolved(seam.Resolve))
}

// PurgeResult is what PurgeQuarantine removed, as journaled.
type PurgeResult struct {
	Run     journal.Run        `json:"run"`
	Details steps.PurgeDetails `json:"details"`
}

// PurgeQuarantine removes the entries of opts.DB's quarantine moved there
// more than olderThan ago, as a journaled run (kind purge): the journal
// says what was removed, by whom, when. Nothing else ever removes
// quarantine. It takes kvrflow's lock on DB.
func PurgeQuarantine(ctx context.Context, opts Options, olderThan time.Duration) (*PurgeResult, error) {
	if olderThan <= 0 {
		return nil, fmt.Errorf("%w: --older-than %s: want a positive age", steps.ErrBadOption, olderThan)
	}
	s, err := open(opts, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.j == nil {
		return nil, fmt.Errorf("%w: no kvrflow journal for %s: nothing was quarantined there by kvrflow", steps.ErrBadPath, s.layout.DB)
	}
	if _, err := s.recoverAll(ctx); err != nil {
		return nil, err
	}
	r, err := s.j.Begin(journal.Run{Kind: steps.KindPurge, Target: s.layout.DB, State: steps.Purge.Start})
	if err != nil {
		return nil, err
	}
	env := s.env(r.ID)
	defer env.Close()
	run := steps.Purge.Load(s.j, r.ID, r.State, s.fs.Faults(), s.log)
	cutoff := time.Now().Add(-olderThan)
	runErr := run.Execute(context.WithoutCancel(ctx), env.PurgeSteps(cutoff, olderThan.String()))
	res := &PurgeResult{}
	if res.Run, err = s.j.Run(r.ID); err != nil {
		return res, errors.Join(runErr, err)
	}
	evs, err := s.j.Events(r.ID)
	if err != nil {
		return res, errors.Join(runErr, err)
	}
	for _, ev := range evs {
		if ev.Event == "purged" {
			_ = json.Unmarshal(ev.Details, &res.Details)
		}
	}
	return res, runErr
}
