package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

var journalReplayCommand = &command{
	name:    "journal replay",
	args:    "RUN --db DIR | --journal PATH [flags]",
	summary: "rebuild a run step by step, with what recovery would do at each point",
	about: `Rebuild run RUN from its journal records and print its timeline: each
record's sequence number, time, time since the previous record, transition
(from -event-> to), the files, bytes and error its details carry, its hash,
and what recovery would have done had the process died right after it
("resume", "roll back" or "nothing"). Row 0 is the run's begin record. The
decision comes from the recovery rule itself (fsm.Definition.Decide), the
code kvrflow recover runs. The journal is opened read-only.

--json prints the timeline (audit.Timeline): the run, if_crashed_at_start
and steps, each with seq, time, duration_ns, from, event, to, files, bytes,
error, details, hash and if_crashed.`,
	example: "kvrflow journal replay 3 --db /var/lib/app/db",
	new:     func() runner { return &journalReplayCmd{} },
}

type journalReplayCmd struct{ journalFlags }

// journalReplayDoc is journal replay's --json document: audit.Timeline.
type journalReplayDoc struct {
	*audit.Timeline
	exitReport
}

func (d *journalReplayDoc) text(w io.Writer) {
	if d.Timeline == nil {
		return
	}
	r := d.Run
	fmt.Fprintf(w, "run %d: %s of %s into %s: state %s, outcome %s, took %s\n", r.ID, r.Kind, orDash(r.Source), r.Target,
		r.State, orDash(r.Outcome), duration(r))
	fmt.Fprintf(w, "  chain: begin record %s, last event %s\n\n", short(r.FirstHash), short(r.FinalHash))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\t+DURATION\tTRANSITION\tFILES\tBYTES\tERROR\tHASH\tIF IT HAD CRASHED HERE")
	fmt.Fprintf(tw, "0\t%s\t-\tbegin -> %s\t-\t-\t-\t%s\t%s\n", stamp(r.Start), steps.StateNew, short(r.FirstHash), d.IfCrashedAtStart)
	for _, s := range d.Steps {
		files, bytes := "-", "-"
		if s.Files > 0 {
			files = fmt.Sprint(s.Files)
		}
		if s.Bytes > 0 {
			bytes = humanBytes(s.Bytes)
		}
		fmt.Fprintf(tw, "%d\t%s\t+%s\t%s -%s-> %s\t%s\t%s\t%s\t%s\t%s\n", s.Seq, stamp(s.Time), s.Duration.Round(time.Microsecond),
			s.From, s.Event, s.To, files, bytes, orDash(oneLine(s.Error)), short(s.Hash), s.IfCrashed)
	}
	tw.Flush()
}

// stamp formats a record's time to the microsecond, in UTC.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// short abbreviates a SHA-256 for a table; the full hash is in --json.
func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return orDash(hash)
}

func (c *journalReplayCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) != 1 {
		return nil, usagef("journal replay wants one RUN id, got %d arguments", len(args))
	}
	id, err := parseRun(args[0])
	if err != nil {
		return nil, err
	}
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	tl, err := audit.Replay(path, id, audit.Default())
	if errors.Is(err, journal.ErrNotFound) {
		return nil, asUsage(fmt.Errorf("%s: %w", path, err))
	}
	if err != nil {
		return nil, noJournal(path, err)
	}
	return &journalReplayDoc{Timeline: tl}, nil
}
