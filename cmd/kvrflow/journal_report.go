package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fsx"
)

var journalReportCommand = &command{
	name:    "journal report",
	args:    "--html FILE --db DIR | --journal PATH [flags]",
	summary: "write one self-contained HTML page of the runs, timelines and paths",
	about: `Write one self-contained HTML page about the journal: every run with its
outcome and duration, and for each run its timeline (as journal replay shows
it, with what recovery would have done at each point) and its path through
the states, drawn inline. The page loads nothing from anywhere: no scripts,
style sheets, fonts or images; it can be mailed or attached to a ticket.

FILE is written durably: to FILE.tmp, synced, renamed over FILE, and its
directory synced; a reader never sees half a page. The journal is opened
read-only.`,
	example: "kvrflow journal report --html /tmp/kvrflow-report.html --db /var/lib/app/db",
	new:     func() runner { return &journalReportCmd{} },
}

type journalReportCmd struct {
	journalFlags
	html string
}

func (c *journalReportCmd) flags(fs *flag.FlagSet) {
	c.journalFlags.flags(fs)
	fs.StringVar(&c.html, "html", "", "write the page to `FILE` (required)")
}

// journalReportDoc is journal report's --json document: the journal, the
// page written, its size and the number of runs it shows.
type journalReportDoc struct {
	Journal string `json:"journal"`
	HTML    string `json:"html"`
	Bytes   int    `json:"bytes"`
	Runs    int    `json:"runs"`
	exitReport
}

func (d *journalReportDoc) text(w io.Writer) {
	if d.HTML != "" {
		fmt.Fprintf(w, "wrote %s (%s): %d runs of %s\n", d.HTML, humanBytes(int64(d.Bytes)), d.Runs, d.Journal)
	}
}

func (c *journalReportCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--html", c.html); err != nil {
		return nil, err
	}
	j, err := c.open(o)
	if err != nil {
		return nil, err
	}
	runs, err := j.Runs(0)
	j.Close()
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := kvrflow.Report(&page, j.Path()); err != nil {
		return nil, err
	}
	if err := fsx.New(vfs.Default, nil).WriteFileDurable(c.html, page.Bytes()); err != nil {
		err = fmt.Errorf("write the report: %w", err)
		if errors.Is(err, fs.ErrNotExist) {
			err = asUsage(err) // --html names a directory that does not exist
		}
		return nil, err
	}
	return &journalReportDoc{Journal: j.Path(), HTML: c.html, Bytes: page.Len(), Runs: len(runs)}, nil
}
