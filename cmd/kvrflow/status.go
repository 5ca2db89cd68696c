package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/journal"
)

var statusCommand = &command{
	name:    "status",
	args:    "--db DIR [flags]",
	summary: "show a database directory and kvrflow's record of it (read-only)",
	about: fmt.Sprintf(`Show, without changing anything, the database directory DIR (whether it
exists, its files and bytes), the journal (opened read-only), its last %d
runs, any run in flight (which kvrflow recover would finish), what is in
quarantine and any leftovers beside DIR.`, kvrflow.StatusRuns),
	example: "kvrflow status --db /var/lib/app/db --json",
	new:     func() runner { return &statusCmd{} },
}

type statusCmd struct {
	common
	db string
}

func (c *statusCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` (required)")
}

// statusDoc is status's --json document: the fields of
// kvrflow.StatusReport (db, db_exists, db_files, db_bytes, work_dir,
// journal, journal_note, runs, in_flight, quarantine, leftovers). With
// "error" set (exit code 4: the journal is unreadable) or "busy" set (exit
// code 0: another kvrflow holds the journal now), runs and in_flight are
// unknown, not empty: the journal was not read.
type statusDoc struct {
	*kvrflow.StatusReport
	exitReport
}

func (d *statusDoc) text(w io.Writer) {
	r := d.StatusReport
	if r == nil {
		return
	}
	if r.DBExists {
		fmt.Fprintf(w, "database:   %s (%s, %d files, %s)\n", r.DB, kindText(r.DBKind), r.DBFiles, humanBytes(r.DBBytes))
	} else {
		fmt.Fprintf(w, "database:   %s (does not exist)\n", r.DB)
	}
	if r.JournalID != "" {
		fmt.Fprintf(w, "journal:    %s (id %s)\n", r.Journal, r.JournalID)
	} else {
		fmt.Fprintf(w, "journal:    %s\n", r.Journal)
	}
	if r.JournalNote != "" {
		fmt.Fprintf(w, "            %s\n", r.JournalNote)
	}
	if len(r.Runs) > 0 {
		fmt.Fprintf(w, "\nlast runs:\n")
		printRuns(w, r.Runs)
	}
	fmt.Fprintln(w)
	if d.Error != "" || r.Busy {
		// The journal was not read (in use, or unreadable): runs and
		// in-flight state are unknown, not none.
		fmt.Fprintln(w, "in flight:  unknown (journal not read)")
	} else if len(r.InFlight) == 0 {
		fmt.Fprintln(w, "in flight:  none")
	} else {
		for _, run := range r.InFlight {
			if tag, ok := r.Cluster[run.ID]; ok {
				fmt.Fprintf(w, "in flight:  run %d in state %s since %s, part of cluster restore %s: etcd decides it ('kvrflow cluster agent'; with etcd lost, 'kvrflow recover --db %s --decision commit|abort', the same on every node)\n",
					run.ID, run.State, timeText(run.Start), tag, r.DB)
				continue
			}
			fmt.Fprintf(w, "in flight:  run %d in state %s since %s: 'kvrflow recover --db %s' finishes it\n",
				run.ID, run.State, timeText(run.Start), r.DB)
		}
	}
	if r.JournalID != "" {
		if r.JournalVerified {
			fmt.Fprintln(w, "journal verify: ok (every hash, link and transition checks)")
		} else {
			fmt.Fprintf(w, "journal verify: %s (kvrflow journal verify says which)\n", plural(r.JournalProblems, "problem"))
		}
	}
	if r.LastVerification != "" {
		fmt.Fprintf(w, "verified:   %s\n", r.LastVerification)
	}
	var kept []string
	for i, k := range r.Kept {
		newest := ""
		if i == len(r.Kept)-1 {
			newest = "; kvrflow undo brings this one back"
		}
		kept = append(kept, fmt.Sprintf("%s (%s, kept by %s run %d, %s ago%s)", k.Path, humanBytes(k.Bytes), k.Kind, k.Run,
			time.Since(k.Time).Round(time.Second), newest))
	}
	printList(w, "kept:", kept)
	if len(r.OtherJournals) > 0 {
		printList(w, "other journals:", r.OtherJournals)
	}
	var q []string
	for _, e := range r.Quarantine {
		q = append(q, fmt.Sprintf("%s (%s, moved %s ago)", e.Path, humanBytes(e.Bytes), time.Since(e.Moved).Round(time.Second)))
	}
	printList(w, "quarantine:", q)
	printList(w, "leftovers:", r.Leftovers)
}

func printList(w io.Writer, label string, items []string) {
	if len(items) == 0 {
		fmt.Fprintf(w, "%-11s none\n", label)
		return
	}
	for _, it := range items {
		fmt.Fprintf(w, "%-11s %s\n", label, it)
	}
}

// printRuns prints runs as a table: id, state, outcome, start, duration
// and source.
func printRuns(w io.Writer, runs []journal.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  RUN\tKIND\tSTATE\tOUTCOME\tSTART\tDURATION\tSOURCE")
	for _, r := range runs {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.State, orDash(r.Outcome),
			timeText(r.Start), duration(r), orDash(r.Source))
	}
	tw.Flush()
}

// duration is how long a run took, or "in flight".
func duration(r journal.Run) string {
	if r.InFlight() || r.End.IsZero() {
		return "in flight"
	}
	return r.End.Sub(r.Start).Round(time.Millisecond).String()
}

func (c *statusCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db); err != nil {
		return nil, err
	}
	if _, err := c.logger(o); err != nil { // nothing to log; the flags are still checked
		return nil, err
	}
	rep, err := kvrflow.Status(kvrflow.Options{DB: c.db, Journal: c.journal})
	if rep == nil {
		return nil, err
	}
	return &statusDoc{StatusReport: rep}, err
}

// kindText says what a database directory holds, for status.
func kindText(kind string) string {
	switch kind {
	case "pebble", "rocksdb":
		return "a " + kind + " database"
	case "empty":
		return "an empty directory"
	case "mixed":
		return "a database and entries not its own"
	}
	return "no database kvrflow recognises"
}
