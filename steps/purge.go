package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

// Purge is the workflow of kvrflow quarantine purge, the one way anything
// in quarantine is ever removed: new --start--> purge --purged--> done.
// Its step journals what it is about to remove (a note) before it
// removes anything, and is past the commit point from the start:
// recovery resumes it (removing what is left of the list) rather than
// undoing it, which could not be done.
var Purge = fsm.MustDefine(fsm.Definition{
	Name:  "purge",
	Start: StateNew,
	Transitions: []fsm.Transition{
		{Event: "start", From: []string{StateNew}, To: StatePurge},
		{Event: "purged", From: []string{StatePurge}, To: StateDone},
		{Event: "abort", From: []string{StateNew}, To: StateRollback},
		{Event: "rolled_back", From: []string{StateRollback}, To: StateRolledBack},
	},
	Forward:     map[string]string{StateNew: "start", StatePurge: "purged", StateRollback: "rolled_back"},
	Terminal:    map[string]string{StateDone: OutcomeCommitted, StateRolledBack: OutcomeRolledBack},
	FailEvent:   "fail",
	AbortEvent:  "abort",
	Rollback:    StateRollback,
	CommitPoint: StatePurge,
	Permanent:   Restore.Permanent,
})

// StatePurge is the purge workflow's one working state.
const StatePurge = "purge"

// KindPurge is the kind of a purge run in the journal.
const KindPurge = "purge"

func init() { Workflows[KindPurge] = Purge }

// QuarantineEntry is one entry of the quarantine directory.
type QuarantineEntry struct {
	Path  string      `json:"path"`
	Bytes int64       `json:"bytes"`
	Moved time.Time   `json:"moved"` // when it was moved in (its ctime; else its mtime)
	ID    *fsx.FileID `json:"id,omitempty"`
}

// ListQuarantine returns the entries of l's quarantine, oldest first.
func ListQuarantine(fsys *fsx.FS, l Layout) ([]QuarantineEntry, error) {
	names, err := fsys.List(l.Quarantine)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []QuarantineEntry
	for _, n := range names {
		p := filepath.Join(l.Quarantine, n)
		fi, err := fsys.Stat(p)
		if err != nil {
			return nil, err
		}
		moved := fi.ModTime()
		var id *fsx.FileID
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			moved = time.Unix(st.Ctim.Sec, st.Ctim.Nsec) // a rename into quarantine sets it
			id = &fsx.FileID{Dev: uint64(st.Dev), Ino: st.Ino}
		}
		out = append(out, QuarantineEntry{Path: p, Bytes: treeBytes(p), Moved: moved, ID: id})
	}
	slices.SortFunc(out, func(a, b QuarantineEntry) int { return a.Moved.Compare(b.Moved) })
	return out, nil
}

// treeBytes is the size of the regular files below path (on the real
// disk; 0 elsewhere), not following links.
func treeBytes(path string) int64 {
	var n int64
	_ = filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// PurgeNote is journaled before Purge removes anything.
type PurgeNote struct {
	OlderThan string            `json:"older_than"`
	By        string            `json:"by"` // user name and uid of the process
	Remove    []QuarantineEntry `json:"remove"`
}

// PurgeDetails is journaled when Purge is done.
type PurgeDetails struct {
	Removed []string `json:"removed"`
	Bytes   int64    `json:"bytes"`
}

// PurgeSteps returns the purge workflow's step: the entries of the
// quarantine moved in before cutoff are journaled, then removed.
func (e *Env) PurgeSteps(cutoff time.Time, olderThan string) map[string]fsm.Step {
	return map[string]fsm.Step{StatePurge: func(_ context.Context, r *fsm.Run) (any, error) {
		n, err := e.purgeNote()
		if err != nil {
			return nil, err
		}
		if n == nil {
			all, err := ListQuarantine(e.FS, e.Layout)
			if err != nil {
				return nil, err
			}
			n = &PurgeNote{OlderThan: olderThan, By: whoAmI()}
			for _, q := range all {
				if !q.Moved.Before(cutoff) {
					continue
				}
				// Never journaled for removal: a mount point, or anything
				// mounted below (its file system's files are not the
				// entry's), or a database a server has open.
				if why := e.purgeBlocked(q.Path); why != "" {
					e.Log.Warn().Str("path", q.Path).Str("why", why).Msg("quarantine entry left in place")
					continue
				}
				n.Remove = append(n.Remove, q)
			}
			if err := r.Note(n); err != nil {
				return nil, err
			}
		}
		var d PurgeDetails
		for _, q := range n.Remove {
			if filepath.Dir(q.Path) != e.Layout.Quarantine {
				return d, fmt.Errorf("%w: %s is not in %s", ErrInconsistent, q.Path, e.Layout.Quarantine)
			}
			// Resumed after a crash, the entry must still be the one the
			// note lists (identity, and when it was moved in): a path
			// reused since is left alone.
			now, err := e.quarantineEntry(q.Path)
			if err != nil {
				return d, err
			}
			if now == nil {
				continue // removed before the crash
			}
			if same, known := fsx.SameID(now.ID, q.ID); (known && !same) || !now.Moved.Equal(q.Moved) {
				e.Log.Warn().Str("path", q.Path).Msg("not the quarantine entry the purge listed; left in place")
				continue
			}
			if err := e.FS.RemoveAllDurable(q.Path); err != nil {
				return d, err
			}
			d.Removed = append(d.Removed, q.Path)
			d.Bytes += q.Bytes
		}
		return d, nil
	}}
}

// purgeNote returns the run's purge note, if it journaled one (a purge
// resumed after a crash removes what that note lists, no more).
func (e *Env) purgeNote() (*PurgeNote, error) {
	evs, err := e.Journal.Events(e.RunID)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev.Event == fsm.NoteEvent && ev.From == StatePurge {
			var n PurgeNote
			if err := json.Unmarshal(ev.Details, &n); err != nil {
				return nil, fmt.Errorf("%w: run %d event %d: bad purge note: %w", ErrInconsistent, e.RunID, ev.Seq, err)
			}
			return &n, nil
		}
	}
	return nil, nil
}

// whoAmI names the user of the process, for the journal.
func whoAmI() string {
	uid := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		return u.Username + " (uid " + uid + ")"
	}
	return "uid " + uid
}

// quarantineEntry describes the entry at path now, nil if it is gone.
func (e *Env) quarantineEntry(path string) (*QuarantineEntry, error) {
	all, err := ListQuarantine(e.FS, e.Layout)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Path == path {
			return &all[i], nil
		}
	}
	return nil, nil
}

// purgeBlocked says why the quarantine entry at path must not be
// removed ("" if nothing stops it): it is, or holds, a mount point, or a
// LOCK below it is held (a server has a database there open).
func (e *Env) purgeBlocked(path string) string {
	if mnt, err := e.FS.IsMountPoint(path); err != nil || mnt {
		return "it is a mount point"
	}
	if m, err := e.FS.MountsBelow(path); err != nil || len(m) > 0 {
		return "a file system is mounted below it"
	}
	if err := noOpenDatabaseBelow(e.FS, path); err != nil {
		return err.Error()
	}
	return ""
}
