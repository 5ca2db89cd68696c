package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
)

var journalExportCommand = &command{
	name:    "journal export",
	args:    "[--format json|ndjson|csv] [--run RUN] [--since TIME] --db DIR | --journal PATH [flags]",
	summary: "write the journal's runs and events in a stable schema (json, ndjson, csv)",
	about: `Write the journal's runs and events to stdout in the versioned export schema
kvrflow.journal.export/1 (DESIGN.md; consumers must ignore fields they do not
know): json is one document, {"schema", "journal", "runs": [run fields and
"events_list"]}; ndjson is one event per line with its run's fields, fit to
ship into a log store; csv is a header and one row per event. Every event
carries its hash and the hash it links to, so a copy kept off the node
anchors the journal's chain.

--run keeps one run; --since keeps the events at or after TIME, an RFC 3339
time (2026-01-02T15:04:05Z) or a Go duration meaning that long ago (24h).
--json is --format json, with "exit_code" added to the document (and, on
failure, a document with "error" and "exit_code" only). The journal is
opened read-only.`,
	example: "kvrflow journal export --format ndjson --since 24h --db /var/lib/app/db",
	new:     func() runner { return &journalExportCmd{} },
}

type journalExportCmd struct {
	journalFlags
	format string
	runID  uint64
	since  string
}

func (c *journalExportCmd) flags(fs *flag.FlagSet) {
	c.journalFlags.flags(fs)
	fs.StringVar(&c.format, "format", "", "output `FORMAT`: json, ndjson or csv (default json)")
	fs.Uint64Var(&c.runID, "run", 0, "export only run `RUN` (default every run)")
	fs.StringVar(&c.since, "since", "", "export only the events at or after `TIME`: RFC 3339, or a duration ago such as 24h")
}

// journalExportDoc is journal export's --json document: the json export
// document (audit.ExportDocument) with exit_code added.
type journalExportDoc struct {
	*audit.ExportDocument
	exitReport
}

// text is never called with an export: without --json the export is
// streamed to stdout as it is made.
func (*journalExportDoc) text(io.Writer) {}

// parseSince parses --since: an RFC 3339 time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("bad --since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a positive age (24h, 2d, 1w)", s)
	}
	return now.Add(-d), nil
}

func (c *journalExportCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	switch c.format {
	case "", "json":
	case "ndjson", "csv":
		if c.json {
			return nil, usagef("--json prints the json format; drop --format %s or --json", c.format)
		}
	default:
		return nil, usagef("bad --format %q: want json, ndjson or csv", c.format)
	}
	since, err := parseSince(c.since, time.Now())
	if err != nil {
		return nil, err
	}
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	opts := audit.ExportOptions{Format: c.format, Run: c.runID, Since: since}
	if !c.json {
		// Streamed: an export of a large journal is never held in memory.
		return nil, c.failed(path, audit.Export(o.stdout, path, opts))
	}
	doc, err := audit.ExportDoc(path, opts)
	if err != nil {
		return nil, c.failed(path, err)
	}
	return &journalExportDoc{ExportDocument: doc}, nil
}

// failed classifies an export's error: no journal, or no such run, is bad
// input.
func (c *journalExportCmd) failed(path string, err error) error {
	if errors.Is(err, journal.ErrNotFound) {
		return asUsage(fmt.Errorf("%s: %w", path, err))
	}
	return noJournal(path, err)
}
