package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/steps"
)

var quarantineListCommand = &command{
	name:    "quarantine list",
	args:    "--db DIR [flags]",
	summary: "list what kvrflow moved aside instead of deleting",
	about: `List the entries of DIR.kvrflow/quarantine, oldest first, with their size and
how long ago they were moved there. kvrflow moves there whatever it finds in
its way and cannot prove to be its own (a stale DIR.tmp, an unknown directory
at a run's name, a target replaced with --force): nothing is deleted. Only
kvrflow quarantine purge removes them.`,
	example: "kvrflow quarantine list --db /var/lib/app/db",
	new:     func() runner { return &quarantineListCmd{} },
}

var quarantinePurgeCommand = &command{
	name:    "quarantine purge",
	args:    "--db DIR --older-than AGE --yes [flags]",
	summary: "remove quarantine entries older than an age (journaled)",
	about: `Remove the entries of DIR.kvrflow/quarantine moved there more than AGE ago
(30d, 2w, 12h). The removal is a journaled run (kind purge): the journal
records what was removed, by which user, and when, before anything is
removed. --yes is required: this deletes data kvrflow could not prove to be
its own.`,
	example: "kvrflow quarantine purge --db /var/lib/app/db --older-than 30d --yes",
	new:     func() runner { return &quarantinePurgeCmd{} },
}

type quarantineListCmd struct {
	common
	db string
}

func (c *quarantineListCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` (required)")
}

// quarantineListDoc is quarantine list's --json document.
type quarantineListDoc struct {
	DB      string                  `json:"db"`
	Entries []steps.QuarantineEntry `json:"entries"`
	exitReport
}

func (d *quarantineListDoc) text(w io.Writer) {
	if d.DB == "" {
		return
	}
	if len(d.Entries) == 0 {
		fmt.Fprintf(w, "nothing in quarantine for %s\n", d.DB)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MOVED\tAGE\tSIZE\tPATH")
	for _, e := range d.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", timeText(e.Moved), time.Since(e.Moved).Round(time.Second), humanBytes(e.Bytes), e.Path)
	}
	tw.Flush()
}

func (c *quarantineListCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db); err != nil {
		return nil, err
	}
	if _, err := c.logger(o); err != nil {
		return nil, err
	}
	db, err := absPath(c.db)
	if err != nil {
		return nil, err
	}
	entries, err := kvrflow.Quarantine(kvrflow.Options{DB: db})
	if entries == nil {
		entries = []steps.QuarantineEntry{}
	}
	return &quarantineListDoc{DB: db, Entries: entries}, err
}

type quarantinePurgeCmd struct {
	common
	db, fault string
	olderThan time.Duration
	yes       bool
}

func (c *quarantinePurgeCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` (required)")
	fs.Var(durationFlag{&c.olderThan}, "older-than", "remove entries moved to quarantine more than `AGE` ago: 30d, 2w, 12h, 90m (required)")
	fs.BoolVar(&c.yes, "yes", false, "really remove them (required)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
}

// quarantinePurgeDoc is quarantine purge's --json document.
type quarantinePurgeDoc struct {
	DB string `json:"db"`
	*kvrflow.PurgeResult
	exitReport
}

func (d *quarantinePurgeDoc) text(w io.Writer) {
	if d.PurgeResult == nil {
		return
	}
	if len(d.Details.Removed) == 0 {
		fmt.Fprintf(w, "nothing in quarantine old enough to purge (run %d journaled)\n", d.Run.ID)
		return
	}
	for _, p := range d.Details.Removed {
		fmt.Fprintf(w, "removed %s\n", p)
	}
	fmt.Fprintf(w, "purged %d entries, %s (run %d journals it)\n", len(d.Details.Removed), humanBytes(d.Details.Bytes), d.Run.ID)
}

func (c *quarantinePurgeCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db); err != nil {
		return nil, err
	}
	if c.olderThan <= 0 {
		return nil, usagef("--older-than is required and must be more than 0: an age such as 30d")
	}
	if !c.yes {
		return nil, usagef("--yes is required: purge deletes what kvrflow moved aside because it could not prove it its own")
	}
	faults, log, report, err := c.faultsAndLogger(o, c.fault)
	if err != nil {
		return nil, err
	}
	defer report()
	db, err := absPath(c.db)
	if err != nil {
		return nil, err
	}
	res, err := kvrflow.PurgeQuarantine(ctx, kvrflow.Options{DB: db, Journal: c.journal, Log: log, Faults: faults}, c.olderThan)
	return &quarantinePurgeDoc{DB: db, PurgeResult: res}, err
}
