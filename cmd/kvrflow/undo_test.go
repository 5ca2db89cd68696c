package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// keptFixture is a fixture after a restore with --keep-old: DB holds the
// backup's database, the old one is kept.
func keptFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, 200, 300)
	mustRun(t, exitOK, nil, f.restoreArgs("--keep-old")...)
	return f
}

// TestUndo_CLIBringsBackAndRedoes: undo brings back the replaced database,
// a second undo the restored one; status lists the kept database.
func TestUndo_CLIBringsBackAndRedoes(t *testing.T) {
	f := keptFixture(t)
	if st := mustRun(t, exitOK, nil, "status", "--db", f.db); !strings.Contains(st.stdout, "kept:       "+f.db+".kvrflow/previous-") {
		t.Errorf("status does not list the kept database:\n%s", st.stdout)
	}
	r := mustRun(t, exitOK, nil, "undo", "--db", f.db)
	if !strings.Contains(r.stdout, "undone by run") || f.which(t) != "old" {
		t.Fatalf("undo did not bring back the old database: %s", r)
	}
	mustRun(t, exitOK, nil, "undo", "--db", f.db)
	if got := f.which(t); got != "new" {
		t.Fatalf("a second undo left the %s contents, want the restored (redo)", got)
	}
}

// TestUndo_NothingKeptExits2: undo with nothing kept is bad input, one
// line naming DIR, and no run is journaled.
func TestUndo_NothingKeptExits2(t *testing.T) {
	f := newFixture(t, 100, 100)
	r := mustRun(t, exitUsage, nil, "undo", "--db", f.db)
	if !strings.Contains(r.stderr, "Error: ") || !strings.Contains(r.stderr, f.db) || !strings.Contains(r.stderr, "no kept database") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	mustRun(t, exitUsage, nil, "undo", "--db", f.db)
	if st := status(t, f.db); len(st.Runs) != 1 {
		t.Errorf("%d runs journaled, want only the restore", len(st.Runs))
	}
}

// TestUndo_WhileTheDatabaseIsOpenExits3: the database's LOCK is held by a
// server: undo exits 3 and changes nothing.
func TestUndo_WhileTheDatabaseIsOpenExits3(t *testing.T) {
	f := keptFixture(t)
	m := &mistakeEnv{fixture: f}
	m.holdDB(t, f.db)
	mustRun(t, exitInUse, nil, "undo", "--db", f.db)
	m.release()
	if got := f.which(t); got != "new" {
		t.Fatalf("the database holds the %s contents", got)
	}
}

// TestUndo_KilledAtEachPointRecovers is undo's kill matrix on the real
// disk, with the exchange and the two-rename plan: killed before its
// commit point, recover rolls it back (DB keeps the restored database);
// after it, recover finishes it (DB holds the kept one). Either way the
// other database is still kept: a second undo swaps them again.
func TestUndo_KilledAtEachPointRecovers(t *testing.T) {
	for _, tc := range []struct {
		point string
		want  string // what DB holds after recover: "new" (the restored) or "old" (the kept)
	}{
		{"undo.precheck.begin", "new"},
		{"undo.precheck.end", "new"},
		{"undo.commit.begin", "new"},
		{"fs.before-exchange", "new"},
		{"fs.after-exchange", "new"},
		{"fs.before-rename@1", "new"},
		{"fs.after-rename@1", "new"},
		{"fs.after-rename@2", "new"},
		{"undo.commit.end", "new"},
		{"undo.finish.begin", "old"},
		{"undo.finish.end", "old"},
	} {
		for _, plan := range []string{"exchange", "rename"} {
			if plan == "exchange" && strings.Contains(tc.point, "rename") || plan == "rename" && strings.Contains(tc.point, "exchange") {
				continue
			}
			t.Run(plan+"/"+tc.point, func(t *testing.T) {
				t.Parallel()
				f := keptFixture(t)
				args := []string{"undo", "--db", f.db}
				if plan == "rename" {
					args = append(args, "--no-exchange")
				}
				r := cli(t, []string{fault.EnvVar + "=" + spec(tc.point, "crash")}, args...)
				if r.signal != syscall.SIGKILL {
					t.Fatalf("want the undo killed at %s, got %s", tc.point, r)
				}
				mustRun(t, exitOK, nil, "recover", "--db", f.db)
				if got := f.which(t); got != tc.want {
					t.Fatalf("after recover the database holds the %s contents, want %s", got, tc.want)
				}
				if st := status(t, f.db); len(st.InFlight) != 0 || len(st.Kept) != 1 || len(st.Leftovers) != 0 {
					t.Fatalf("after recover: in flight %v, kept %v, leftovers %v; want one kept database and nothing else", st.InFlight, st.Kept, st.Leftovers)
				}
				mustRun(t, exitOK, nil, "undo", "--db", f.db)
				other := map[string]string{"new": "old", "old": "new"}[tc.want]
				if got := f.which(t); got != other {
					t.Fatalf("an undo after the recovery left the %s contents, want %s", got, other)
				}
			})
		}
	}
}

// TestJournalPrune_KeepsTheRunsThatOwnAKeptDatabase: prune stops at a run
// that owns a kept database (its record is the proof undo needs), so undo
// still works after a prune.
func TestJournalPrune_KeepsTheRunsThatOwnAKeptDatabase(t *testing.T) {
	f := newFixture(t, 100, 100)
	mustRun(t, exitOK, nil, f.restoreArgs()...)             // run 1
	mustRun(t, exitOK, nil, f.restoreArgs("--keep-old")...) // run 2 keeps run 1's database
	mustRun(t, exitOK, nil, f.restoreArgs()...)             // run 3 removes run 2's
	mustRun(t, exitOK, nil, "journal", "prune", "--db", f.db, "--keep", "1")
	st := status(t, f.db)
	if len(st.Runs) != 2 || st.Runs[0].ID != 2 {
		t.Fatalf("after prune the runs are %v, want 2 and 3 (run 2 owns a kept database)", st.Runs)
	}
	if len(st.Kept) != 1 || st.Kept[0].Run != 2 {
		t.Fatalf("kept %+v, want run 2's", st.Kept)
	}
	mustRun(t, exitOK, nil, "undo", "--db", f.db)
}
