package kvrflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// StatusReport describes a database directory and kvrflow's record of it.
type StatusReport struct {
	DB        string `json:"db"`
	DBExists  bool   `json:"db_exists"`
	DBFiles   int    `json:"db_files"`
	DBBytes   int64  `json:"db_bytes"`
	Work      string `json:"work_dir"`
	Journal   string `json:"journal"`
	JournalID string `json:"journal_id,omitempty"`
	// OtherJournals lists run directories of other journals in the
	// kvrflow directory: those journals have runs in flight on DB.
	OtherJournals []string      `json:"other_journals,omitempty"`
	JournalNote   string        `json:"journal_note,omitempty"`
	Runs          []journal.Run `json:"runs"`
	InFlight      []journal.Run `json:"in_flight"`
	// Cluster maps each run in flight that is a cluster node's part of a
	// cluster restore to that restore's tag, NAME/ATTEMPT (see
	// Options.Prepare): etcd decides it, not the journal.
	Cluster map[uint64]string `json:"cluster,omitempty"`
	// DBKind is what DB holds: absent, empty, pebble, rocksdb, mixed (a
	// database and entries not its own) or other.
	DBKind     string                  `json:"db_kind"`
	Quarantine []steps.QuarantineEntry `json:"quarantine"`
	// JournalVerified says whether the journal's hash chains and every
	// run's transitions check (kvrflow journal verify); JournalProblems
	// counts what does not.
	JournalVerified bool     `json:"journal_verified"`
	JournalProblems int      `json:"journal_problems,omitempty"`
	Leftovers       []string `json:"leftovers"`
	// Kept lists the databases kept in the kvrflow directory that the
	// journal proves (restore --keep-old, undo), oldest first: undo brings
	// back the newest.
	Kept []KeptStatus `json:"kept"`
	// LastVerification says which check the last run that verified a
	// staged database ran (and which run), e.g. "pebble open read-only +
	// CheckLevels" or "...; ldb checkconsistency OK".
	LastVerification string `json:"last_verification,omitempty"`
	// Busy is set when another kvrflow holds the journal: a restore or a
	// recovery is running now, and the runs could not be read.
	Busy bool `json:"busy,omitempty"`
}

// KeptStatus is one kept database in a StatusReport.
type KeptStatus struct {
	steps.KeptDB
	Bytes int64 `json:"bytes"`
}

// StatusRuns is how many of the last runs Status reports.
const StatusRuns = 10

// StatusLockTimeout is how long Status waits for a journal another
// kvrflow holds before it reports the database busy.
const StatusLockTimeout = 300 * time.Millisecond

// Status reports on opts.DB without changing anything: the database
// directory, the last runs and those in flight in the journal (opened
// read-only), what is in quarantine, and leftovers beside the database.
func Status(opts Options) (*StatusReport, error) {
	layout, err := steps.NewLayout(opts.DB)
	if err != nil {
		return nil, err
	}
	v := opts.FS
	if v == nil {
		v = vfs.Default
	}
	seam := fsx.New(v, nil)
	layout = layout.Resolved(seam.Resolve)
	if err := steps.CheckWork(seam, layout); err != nil {
		return nil, err // a symbolic link, or not a directory: said as such
	}
	rep := &StatusReport{DB: layout.DB, Work: layout.Work, Journal: opts.Journal, Runs: []journal.Run{}, InFlight: []journal.Run{},
		Quarantine: []steps.QuarantineEntry{}, Leftovers: []string{}, Kept: []KeptStatus{}}
	if rep.Journal != "" {
		if abs, err := filepath.Abs(rep.Journal); err == nil {
			rep.Journal = abs
		}
	}
	if rep.Journal == "" {
		rep.Journal = layout.Journal()
	}
	if rep.DBExists, err = seam.Exists(layout.DB); err != nil {
		return nil, err
	}
	if rep.DBExists {
		names, err := seam.List(layout.DB)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if fi, err := seam.Stat(filepath.Join(layout.DB, n)); err == nil && !fi.IsDir() {
				rep.DBFiles++
				rep.DBBytes += fi.Size()
			}
		}
	}
	if rep.DBKind, _, err = steps.ClassifyTarget(seam, layout.DB); err != nil {
		return nil, err
	}
	if q, err := steps.ListQuarantine(seam, layout); err != nil {
		return nil, err
	} else if q != nil {
		rep.Quarantine = q
	}
	if names, err := seam.List(layout.Work); err == nil {
		for _, n := range names {
			switch n {
			case steps.JournalName, steps.LockName, steps.QuarantineName, filepath.Base(rep.Journal):
			default:
				rep.Leftovers = append(rep.Leftovers, filepath.Join(layout.Work, n))
			}
		}
	}
	if ok, _ := seam.Exists(layout.KvrocksTmp()); ok {
		rep.Leftovers = append(rep.Leftovers, layout.KvrocksTmp())
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = StatusLockTimeout
	}
	j, err := journal.Open(rep.Journal, journal.Options{ReadOnly: true, Timeout: timeout})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.JournalNote = "no journal at " + rep.Journal + ": kvrflow has not restored this database with it (a journal kept elsewhere: give --journal)"
		left := rep.Leftovers[:0]
		for _, p := range rep.Leftovers {
			if rd, ok := steps.ParseRunDir(filepath.Base(p)); ok && rd.Kind != "previous" {
				rep.JournalNote = "no journal here, but another journal has work in flight on this database"
				rep.OtherJournals = append(rep.OtherJournals, fmt.Sprintf("%s: run %d of journal %s is in flight (recover it with that journal)", p, rd.Run, rd.Journal))
				continue
			}
			left = append(left, p)
		}
		rep.Leftovers = left
		return rep, nil
	case errors.Is(err, journal.ErrLocked):
		rep.Busy = true
		// The running kvrflow's own directories are not leftovers.
		left := rep.Leftovers[:0]
		for _, p := range rep.Leftovers {
			if _, ok := steps.ParseRunDir(filepath.Base(p)); !ok {
				left = append(left, p)
			}
		}
		rep.Leftovers = left
		rep.JournalNote = "a kvrflow is working on this database now (it holds the journal); run status again when it is done"
		return rep, nil
	case err != nil:
		return rep, err
	}
	defer j.Close()
	if rep.Runs, err = j.Runs(StatusRuns); err != nil {
		return rep, err
	}
	all, err := inFlightFor(seam, j, layout.DB)
	if err != nil {
		return rep, err
	}
	rep.InFlight = append(rep.InFlight, all...)
	for _, r := range all {
		if r.Kind != steps.KindRestore {
			continue
		}
		if tag, err := steps.PreparedTag(j, r.ID); err == nil && tag != "" {
			if rep.Cluster == nil {
				rep.Cluster = map[uint64]string{}
			}
			rep.Cluster[r.ID] = tag
		}
	}
	// A staging-N or old-N of a run in flight is no leftover: it may hold
	// the only copy of the old database until recovery decides.
	inflight := map[uint64]bool{}
	for _, r := range all {
		inflight[r.ID] = true
	}
	left := rep.Leftovers[:0]
	jid := j.ID()
	rep.JournalID = jid
	kept, _, err := steps.ListKept(seam, layout, j)
	if err != nil {
		return rep, err
	}
	isKept := map[string]bool{}
	for _, k := range kept {
		rep.Kept = append(rep.Kept, KeptStatus{KeptDB: k, Bytes: dirBytes(seam, k.Path)})
		isKept[k.Path] = true
	}
	for _, p := range rep.Leftovers {
		if rd, ok := steps.ParseRunDir(filepath.Base(p)); ok && filepath.Dir(p) == layout.Work && rd.Journal == jid && inflight[rd.Run] {
			continue
		}
		if isKept[p] {
			continue
		}
		if rd, ok := steps.ParseRunDir(filepath.Base(p)); ok && rd.Journal != jid {
			what := fmt.Sprintf("run %d of journal %s is in flight (recover it with that journal)", rd.Run, rd.Journal)
			if rd.Kind == "previous" {
				what = fmt.Sprintf("a database kept by run %d of journal %s (kvrflow undo with that journal brings it back)", rd.Run, rd.Journal)
			}
			rep.OtherJournals = append(rep.OtherJournals, p+": "+what)
			continue
		}
		left = append(left, p)
	}
	rep.Leftovers = left
	// The last committed restore's verification: a rolled-back run's
	// check verified nothing that is in DB now.
	for i := len(rep.Runs) - 1; i >= 0 && rep.LastVerification == ""; i-- {
		if r := rep.Runs[i]; r.Kind != steps.KindRestore || r.Outcome != steps.OutcomeCommitted {
			continue
		}
		evs, err := j.Events(rep.Runs[i].ID)
		if err != nil {
			return rep, err
		}
		for _, ev := range evs {
			var d struct {
				Check string `json:"check"`
			}
			if ev.From == steps.StateVerify && (ev.Event == "ready" || ev.Event == "verified") && json.Unmarshal(ev.Details, &d) == nil {
				rep.LastVerification = fmt.Sprintf("run %d: %s", rep.Runs[i].ID, d.Check)
			}
		}
	}
	j.Close()
	if v, err := audit.Verify(rep.Journal, nil); err == nil {
		rep.JournalVerified, rep.JournalProblems = v.OK(), len(v.Problems)
	}
	return rep, nil
}

// dirBytes is the size of the files directly in dir (a database keeps its
// files at the top level).
func dirBytes(seam *fsx.FS, dir string) int64 {
	names, err := seam.List(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, name := range names {
		if fi, err := seam.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// KeptRuns returns the ids of the runs of journal j that own a kept
// database (restore --keep-old, undo), or the partial copy an interrupted
// run set aside, of any database the journal served:
// their records prove the ownership, so journal prune keeps them.
func KeptRuns(j *journal.Journal) ([]uint64, error) {
	runs, err := j.Runs(0)
	if err != nil {
		return nil, err
	}
	seam := fsx.New(vfs.Default, nil)
	seen := map[string]bool{}
	var out []uint64
	for _, r := range runs {
		if seen[r.Target] || r.Target == "" {
			continue
		}
		seen[r.Target] = true
		layout, err := steps.NewLayout(r.Target)
		if err != nil {
			continue
		}
		kept, _, err := steps.ListKept(seam, layout, j)
		if err != nil {
			return nil, err
		}
		for _, k := range kept {
			out = append(out, k.Run)
		}
		// The run that set a partial copy aside proves it its own too.
		if names, err := seam.List(layout.Work); err == nil {
			for _, n := range names {
				if rd, ok := steps.ParseRunDir(n); ok && rd.Kind == "trash" && rd.Journal == j.ID() {
					out = append(out, rd.Run)
				}
			}
		}
	}
	return out, nil
}
