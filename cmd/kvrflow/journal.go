package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"text/tabwriter"

	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// journalCommands are the journal subcommands, in the order help lists
// them.
var journalCommands = []*command{journalListCommand, journalShowCommand, journalVerifyCommand,
	journalReplayCommand, journalExportCommand, journalGraphCommand, journalReportCommand, journalPruneCommand}

var journalListCommand = &command{
	name:    "journal list",
	args:    "--db DIR | --journal PATH [flags]",
	summary: "list the runs in the journal",
	about: `List every run the journal holds, oldest first: id, kind, state, outcome,
start, duration and source. The journal is opened read-only; a kvrflow
writing it makes this wait up to a few seconds, then fail with exit code 3.`,
	example: "kvrflow journal list --db /var/lib/app/db",
	new:     func() runner { return &journalListCmd{} },
}

var journalShowCommand = &command{
	name:    "journal show",
	args:    "RUN --db DIR | --journal PATH [flags]",
	summary: "show one run and each of its journaled events",
	about: `Show run RUN (its numeric id, from kvrflow journal list) and every event
journaled for it: sequence number, time, the transition from -event-> to,
and the event's details as compact JSON. A note (from == to) is what a step
recorded before it acted on disk. The journal is opened read-only.`,
	example: "kvrflow journal show 3 --db /var/lib/app/db",
	new:     func() runner { return &journalShowCmd{} },
}

// journalFlags are the flags of the journal commands: where the journal is.
type journalFlags struct {
	common
	db string
}

func (c *journalFlags) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` whose journal to read (or give --journal)")
}

// path returns the journal's file name: --journal, else
// DIR.kvrflow/journal.db. It checks the log flags too (the journal commands
// log nothing, but a bad flag is still a usage error).
func (c *journalFlags) path(o *stdio) (string, error) {
	if _, err := c.logger(o); err != nil {
		return "", err
	}
	if c.journal != "" {
		return absOr(c.journal), nil // documents name it absolutely
	}
	if c.db == "" {
		return "", usagef("--db or --journal is required")
	}
	layout, err := steps.NewLayout(c.db)
	if err != nil {
		return "", err
	}
	return layout.Journal(), nil
}

// open opens the journal read-only: --journal, else DIR.kvrflow/journal.db.
// A journal that does not exist is bad input (exit code 2).
func (c *journalFlags) open(o *stdio) (*journal.Journal, error) {
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	return j, noJournal(path, err)
}

// noJournal turns the error of opening a journal that does not exist into
// bad input (exit code 2); it returns any other error, or nil, as is.
func noJournal(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return asUsage(fmt.Errorf("no journal at %s: kvrflow has not restored this database", path))
	}
	return err
}

type journalListCmd struct{ journalFlags }

// journalListDoc is journal list's --json document: the journal's path
// and every run, oldest first.
type journalListDoc struct {
	Journal   string        `json:"journal"`
	JournalID string        `json:"journal_id"`
	Runs      []journal.Run `json:"runs"`
	exitReport
}

func (d *journalListDoc) text(w io.Writer) {
	if d.Journal == "" {
		return
	}
	fmt.Fprintf(w, "journal %s (id %s; its runs' directories are named staging-%s-RUN)\n", d.Journal, orDash(d.JournalID), orDash(d.JournalID))
	if len(d.Runs) == 0 {
		fmt.Fprintln(w, "no runs")
		return
	}
	printRuns(w, d.Runs)
}

func (c *journalListCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	j, err := c.open(o)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	runs, err := j.Runs(0)
	if err != nil {
		return nil, err
	}
	if runs == nil {
		runs = []journal.Run{}
	}
	return &journalListDoc{Journal: j.Path(), JournalID: j.ID(), Runs: runs}, nil
}

type journalShowCmd struct{ journalFlags }

// journalShowDoc is journal show's --json document: the journal's path,
// the run and its events in order.
type journalShowDoc struct {
	Journal string          `json:"journal"`
	Run     *journal.Run    `json:"run,omitempty"`
	Events  []journal.Event `json:"events"`
	exitReport
}

func (d *journalShowDoc) text(w io.Writer) {
	if d.Run == nil {
		return
	}
	r := d.Run
	fmt.Fprintf(w, "run %d: %s of %s into %s\n", r.ID, r.Kind, orDash(r.Source), r.Target)
	fmt.Fprintf(w, "  mode %s, engine %s, state %s, outcome %s\n", orDash(r.Mode), orDash(r.Engine), r.State, orDash(r.Outcome))
	fmt.Fprintf(w, "  started %s, took %s\n", timeText(r.Start), duration(*r))
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", oneLine(r.Error))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTRANSITION\tDETAILS")
	for _, ev := range d.Events {
		fmt.Fprintf(tw, "%d\t%s\t%s -%s-> %s\t%s\n", ev.Seq, ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
			ev.From, ev.Event, ev.To, compact(ev.Details))
	}
	tw.Flush()
}

// compact returns details as one line of JSON, or "-".
func compact(details json.RawMessage) string {
	if len(details) == 0 {
		return "-"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, details); err != nil {
		return string(details)
	}
	return b.String()
}

func (c *journalShowCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) != 1 {
		return nil, usagef("journal show wants one RUN id, got %d arguments", len(args))
	}
	id, err := parseRun(args[0])
	if err != nil {
		return nil, err
	}
	j, err := c.open(o)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	run, err := j.Run(id)
	if errors.Is(err, journal.ErrNotFound) {
		return nil, asUsage(fmt.Errorf("%s: %w", j.Path(), err))
	}
	if err != nil {
		return nil, err
	}
	events, err := j.Events(id)
	if err != nil {
		return nil, err
	}
	if events == nil {
		events = []journal.Event{}
	}
	return &journalShowDoc{Journal: j.Path(), Run: &run, Events: events}, nil
}

// parseRun parses a RUN argument: a run id from kvrflow journal list.
func parseRun(arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("bad RUN %q: want a run id from kvrflow journal list", arg)
	}
	return id, nil
}
