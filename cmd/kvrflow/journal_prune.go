package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/journal"
)

var journalPruneCommand = &command{
	name:    "journal prune",
	args:    "--keep N | --older-than DURATION --db DIR | --journal PATH [flags]",
	summary: "remove old ended runs, keeping the rest verifiable",
	about: `Remove the oldest runs from the journal: with --keep N all but the N newest,
with --older-than DURATION those that ended longer ago than that (give
exactly one). Only a prefix of the journal goes: pruning stops at the first
run that must stay, and a run in flight always stays, so what remains is one
unbroken hash chain; the hash it starts from is recorded in the journal, and
kvrflow journal verify still checks everything that remains. Export the
journal first if the removed runs must be kept somewhere.

It is one journal transaction: a crash prunes all or nothing. It opens the
journal for writing (waiting for a running restore, exit code 3 if it does
not finish in time), and migrates a journal of an older kvrflow first.`,
	example: "kvrflow journal prune --keep 100 --db /var/lib/app/db",
	new:     func() runner { return &journalPruneCmd{} },
}

type journalPruneCmd struct {
	journalFlags
	keep      int
	olderThan time.Duration
}

func (c *journalPruneCmd) flags(fs *flag.FlagSet) {
	c.journalFlags.flags(fs)
	c.keep = -1 // not given (the flag shows no default)
	fs.Var(optInt{&c.keep}, "keep", "keep the `N` newest runs (1 or more), remove the older ended ones")
	fs.Var(durationFlag{&c.olderThan}, "older-than", "remove the runs that ended more than `AGE` ago: 30d, 2w, 720h")
}

// journalPruneDoc is journal prune's --json document: the runs removed
// (ids, oldest first), how many remain, and the anchor: the hash the
// remaining chain starts from (the first remaining run's prev_run).
type journalPruneDoc struct {
	Journal   string   `json:"journal"`
	Removed   []uint64 `json:"removed"`
	Remaining int      `json:"remaining"`
	Anchor    string   `json:"anchor,omitempty"`
	exitReport
}

func (d *journalPruneDoc) text(w io.Writer) {
	if d.Journal == "" {
		return
	}
	if len(d.Removed) == 0 {
		fmt.Fprintf(w, "nothing to prune in %s: %d runs remain\n", d.Journal, d.Remaining)
		return
	}
	ids := make([]string, len(d.Removed))
	for i, id := range d.Removed {
		ids[i] = fmt.Sprint(id)
	}
	fmt.Fprintf(w, "removed %d runs from %s: %s\n", len(d.Removed), d.Journal, strings.Join(ids, ", "))
	fmt.Fprintf(w, "runs remaining: %d; their chain starts from %s\n", d.Remaining, orDash(d.Anchor))
}

func (c *journalPruneCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	switch {
	case c.keep == 0:
		return nil, usagef("--keep 0 would remove every ended run: give 1 or more (the newest runs kept)")
	case c.keep < -1:
		return nil, usagef("--keep %d: give 1 or more", c.keep)
	case (c.keep > 0) == (c.olderThan > 0):
		return nil, usagef("give exactly one of --keep N and --older-than AGE")
	}
	if c.keep < 0 {
		c.keep = 0
	}
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	// A read-write Open creates a missing journal: prune must not.
	if _, err := os.Stat(path); err != nil {
		return nil, noJournal(path, err)
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		return nil, noJournal(path, err)
	}
	defer j.Close()
	var before time.Time
	if c.olderThan > 0 {
		before = time.Now().Add(-c.olderThan)
	}
	// A run that owns a kept database stays, and every run after it: its
	// record is the proof that lets undo use the database.
	hold, err := kvrflow.KeptRuns(j)
	if err != nil {
		return nil, err
	}
	removed, err := j.Prune(c.keep, before, hold...)
	if err != nil {
		return nil, err
	}
	runs, err := j.Runs(0)
	if err != nil {
		return nil, err
	}
	if removed == nil {
		removed = []uint64{}
	}
	doc := &journalPruneDoc{Journal: path, Removed: removed, Remaining: len(runs)}
	if len(runs) > 0 {
		doc.Anchor = runs[0].PrevRun
	}
	return doc, j.Close()
}
