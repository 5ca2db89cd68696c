package steps

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/kvrflow/kvrflow/fsm"
)

// CleanDetails is journaled when Clean is done.
type CleanDetails struct {
	Removed     []string     `json:"removed,omitempty"`
	Quarantined []Quarantine `json:"quarantined,omitempty"`
}

// Quarantine records a leftover moved aside.
type Quarantine struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// clean removes what the journal proves to be kvrflow's garbage and moves
// every other leftover into the quarantine directory. It deletes only
// staging-N and old-N directories of ended runs of this database, and
// never a directory it cannot tie to such a run.
func (e *Env) clean(ctx context.Context, _ *fsm.Run) (any, error) {
	var d CleanDetails
	names, err := e.FS.List(e.Layout.Work)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{JournalName: true, LockName: true, QuarantineName: true}
	if e.Journal != nil && filepath.Dir(e.Journal.Path()) == e.Layout.Work {
		keep[filepath.Base(e.Journal.Path())] = true
	}
	for _, name := range names {
		if keep[name] {
			continue
		}
		path := filepath.Join(e.Layout.Work, name)
		garbage, why := e.provenGarbage(name)
		if garbage {
			if err := e.FS.RemoveAllDurable(path); err != nil {
				return d, err
			}
			e.Log.Info().Str("path", path).Str("proof", why).Msg("removed kvrflow leftover")
			d.Removed = append(d.Removed, path)
			continue
		}
		q, err := e.quarantine(path, why)
		if err != nil {
			return d, err
		}
		d.Quarantined = append(d.Quarantined, q)
	}
	tmp := e.Layout.KvrocksTmp()
	if ok, err := e.FS.Exists(tmp); err != nil {
		return d, err
	} else if ok {
		q, err := e.quarantine(tmp, "stale "+filepath.Base(tmp)+" (left by an interrupted Kvrocks or manual restore); not kvrflow's, kept intact")
		if err != nil {
			return d, err
		}
		d.Quarantined = append(d.Quarantined, q)
	}
	return d, nil
}

// provenGarbage reports whether the journal proves Work/name to be
// kvrflow's garbage, and why (or why not).
func (e *Env) provenGarbage(name string) (bool, string) {
	kind, id, ok := parseRunDir(name)
	if !ok {
		return false, "unknown entry in " + e.Layout.Work
	}
	if e.Journal == nil || id == e.RunID {
		return false, "no journal proof"
	}
	r, err := e.Journal.Run(id)
	switch {
	case err != nil:
		return false, "run " + strconv.FormatUint(id, 10) + " not in the journal"
	case r.Target != e.Layout.DB:
		return false, fmt.Sprintf("run %d restored %s, not %s", id, r.Target, e.Layout.DB)
	case r.InFlight():
		return false, fmt.Sprintf("run %d is still in flight", id)
	case r.Outcome == OutcomeCommitted:
		return true, fmt.Sprintf("run %d committed; its %s directory holds a superseded copy", id, kind)
	case r.Outcome == OutcomeRolledBack && kind == "staging":
		return true, fmt.Sprintf("run %d rolled back; its staging directory was never committed", id)
	default:
		return false, fmt.Sprintf("run %d ended %s yet left its %s directory", id, r.Outcome, kind)
	}
}

// quarantine moves path into the quarantine directory, durably, under a
// name that says which run moved it.
func (e *Env) quarantine(path, reason string) (Quarantine, error) {
	if err := e.FS.EnsureDir(e.Layout.Quarantine); err != nil {
		return Quarantine{}, err
	}
	base := fmt.Sprintf("run%d-%s", e.RunID, filepath.Base(path))
	dst := filepath.Join(e.Layout.Quarantine, base)
	for i := 1; ; i++ {
		ok, err := e.FS.Exists(dst)
		if err != nil {
			return Quarantine{}, err
		}
		if !ok {
			break
		}
		dst = filepath.Join(e.Layout.Quarantine, fmt.Sprintf("%s.%d", base, i))
	}
	if err := e.FS.RenameDurable(path, dst); err != nil {
		return Quarantine{}, err
	}
	e.Log.Warn().Str("path", path).Str("moved_to", dst).Str("reason", reason).Msg("quarantined leftover")
	return Quarantine{From: path, To: dst, Reason: reason}, nil
}
