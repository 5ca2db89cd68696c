// Package journalgen writes journals of many runs, journaled as the
// engine journals restores, for benchmarks (bench/journalgen, the audit
// package's benchmarks).
//
// # Crash safety
//
// None is needed: a journal it leaves half written is a benchmark input
// to throw away.
//
// # Caveats
//
// The runs are made up (no database is restored); their records have the
// shapes and sizes of real ones.
package journalgen

import (
	"fmt"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// RolledBackEvery is how often a run Write journals fails: one in this
// many.
const RolledBackEvery = 20

// Events returns how many events Write journals for runs runs.
func Events(runs int) int {
	failed := runs / RolledBackEvery
	return 8*(runs-failed) + 5*failed
}

// record is one Append.
type record struct {
	from, event, to string
	details         any
	outcome, err    string
}

// Write creates the journal at path (which must not exist) holding runs
// ended runs of target: one in RolledBackEvery fails its write step with
// EIO and is rolled back (five records), the others commit with the eight
// records of a committed restore (every transition and the commit note,
// with details of the sizes the steps write). Each record is an fsynced
// bbolt transaction through journal.Begin and Append: write it on tmpfs.
// The journal keeps no space reserve. On error a partial journal may be
// left at path.
func Write(path, target string, runs int) error {
	j, err := journal.Open(path, journal.Options{Reserve: journal.NoReserve})
	if err != nil {
		return err
	}
	defer j.Close()
	files := make([]steps.WrittenFile, 20)
	for i := range files {
		files[i] = steps.WrittenFile{Name: fmt.Sprintf("%06d.sst", i+5), Size: 64 << 20, CRC32C: uint32(i) * 2654435761}
	}
	id := fsx.FileID{Dev: 2049, Ino: 1234567}
	for n := range runs {
		r, err := j.Begin(journal.Run{Kind: "restore", Source: "/backups/app", Target: target,
			Mode: string(steps.ModeCopy), Engine: steps.EngineAuto, State: steps.StateNew})
		if err != nil {
			return err
		}
		staging := fmt.Sprintf("%s.kvrflow/staging-%d", target, r.ID)
		recs := []record{
			{steps.StateNew, "start", steps.StatePrecheck, nil, "", ""},
			{steps.StatePrecheck, "checked", steps.StateClean, steps.PrecheckDetails{Kind: "kvrflow", Engine: steps.EnginePebble,
				Mode: steps.ModeCopy, Files: len(files), Bytes: 20 * 64 << 20, Need: 21 * 64 << 20, Avail: 1 << 40, DBLock: true}, "", ""},
			{steps.StateClean, "cleaned", steps.StateWrite, steps.CleanDetails{}, "", ""},
		}
		if n%RolledBackEvery == RolledBackEvery-1 {
			const msg = "step write: copy 000011.sst: input/output error"
			recs = append(recs,
				record{steps.StateWrite, "fail", steps.StateRollback, map[string]string{"error": msg}, "", msg},
				record{steps.StateRollback, "rolled_back", steps.StateRolledBack, nil, steps.OutcomeRolledBack, ""})
		} else {
			plan := steps.CommitPlan{Plan: steps.PlanExchange, DB: target, Staging: staging, DBID: &id, StagingID: &id}
			recs = append(recs,
				record{steps.StateWrite, "written", steps.StateVerify, steps.WriteDetails{Staging: staging, Mode: steps.ModeCopy,
					Bytes: 20 * 64 << 20, Files: files}, "", ""},
				record{steps.StateVerify, "verified", steps.StateCommit, steps.VerifyDetails{Check: "pebble open read-only + CheckLevels"}, "", ""},
				record{steps.StateCommit, "note", steps.StateCommit, plan, "", ""},
				record{steps.StateCommit, "committed", steps.StateFinish, plan, "", ""},
				record{steps.StateFinish, "finished", steps.StateDone, steps.FinishDetails{Removed: []string{staging}}, steps.OutcomeCommitted, ""})
		}
		for _, rec := range recs {
			if err := j.Append(r.ID, rec.from, rec.event, rec.to, rec.details, rec.outcome, rec.err); err != nil {
				return err
			}
		}
	}
	return j.Close()
}
