package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/journal"
)

var journalReportCommand = &command{
	name:    "journal report",
	args:    "--html FILE [--recent N | --run RUN | --since TIME --until TIME] --db DIR | --journal PATH [flags]",
	summary: "write one self-contained HTML page: a summary of every run, the latest in detail",
	about: `Write one self-contained HTML page about the journal: a summary of every run
(how many by outcome, by kind and by target, the percentiles of their
durations, and how many failed in each step), then the latest 50 runs in
detail, each with its timeline (as journal replay shows it, with what
recovery would have done at each point) and its path through the states,
drawn inline. The page loads nothing from anywhere: no scripts, style
sheets, fonts or images; it can be mailed or attached to a ticket.

--recent N shows the latest N runs in detail instead of 50 (0: none);
--run shows that run only; --since and --until show the runs that started
in that range, each an RFC 3339 time (2026-01-02T15:04:05Z) or a Go
duration meaning that long ago (24h). The summary always counts every run.

FILE is written durably: to a temporary file, synced, renamed over FILE,
and its directory synced; a reader never sees half a page. The journal is
opened read-only.`,
	example: "kvrflow journal report --html /tmp/kvrflow-report.html --since 24h --db /var/lib/app/db",
	new:     func() runner { return &journalReportCmd{} },
}

type journalReportCmd struct {
	journalFlags
	html         string
	recent       int
	runID        uint64
	since, until string
}

func (c *journalReportCmd) flags(fs *flag.FlagSet) {
	c.journalFlags.flags(fs)
	fs.StringVar(&c.html, "html", "", "write the page to `FILE` (required)")
	fs.IntVar(&c.recent, "recent", audit.DefaultRecent, "show the latest `N` runs in detail")
	fs.Uint64Var(&c.runID, "run", 0, "show only run `RUN` in detail")
	fs.StringVar(&c.since, "since", "", "show in detail the runs started at or after `TIME`: RFC 3339, or a duration ago such as 24h")
	fs.StringVar(&c.until, "until", "", "show in detail the runs started before `TIME`: RFC 3339, or a duration ago")
}

// journalReportDoc is journal report's --json document: the journal, the
// page written, its size, the number of runs it counts and the number it
// shows in detail.
type journalReportDoc struct {
	Journal  string `json:"journal"`
	HTML     string `json:"html"`
	Bytes    int    `json:"bytes"`
	Runs     int    `json:"runs"`
	Detailed int    `json:"detailed"`
	exitReport
}

func (d *journalReportDoc) text(w io.Writer) {
	if d.HTML != "" {
		fmt.Fprintf(w, "wrote %s (%s): %d runs of %s, %d in detail\n", d.HTML, humanBytes(int64(d.Bytes)), d.Runs, d.Journal, d.Detailed)
	}
}

func (c *journalReportCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--html", c.html); err != nil {
		return nil, err
	}
	c.html = absOr(c.html)
	if fi, err := os.Stat(filepath.Dir(c.html)); err != nil || !fi.IsDir() {
		return nil, usagef("--html %s: the directory %s does not exist", c.html, filepath.Dir(c.html))
	}
	now := time.Now()
	since, err := parseSince(c.since, now)
	if err != nil {
		return nil, err
	}
	until, err := parseSince(c.until, now)
	if err != nil {
		return nil, usagef("bad --until %q: want an RFC 3339 time or a positive duration ago", c.until)
	}
	opts := audit.ReportOptions{Workflows: audit.Default(), Recent: c.recent, Run: c.runID, Since: since, Until: until}
	switch {
	case c.recent < 0:
		return nil, usagef("--recent must not be negative")
	case c.recent == 0:
		opts.Recent = -1 // none; audit's 0 means its default
	}
	if c.runID != 0 && (c.since != "" || c.until != "") {
		return nil, usagef("give --run or a time range (--since, --until), not both")
	}
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	st, err := audit.Report(&page, path, opts)
	if errors.Is(err, journal.ErrNotFound) {
		return nil, asUsage(fmt.Errorf("%s: %w", path, err))
	}
	if err != nil {
		return nil, noJournal(path, err)
	}
	if err := fsx.New(vfs.Default, nil).WriteFileDurable(c.html, page.Bytes()); err != nil {
		err = fmt.Errorf("write the report: %w", err)
		if errors.Is(err, fs.ErrNotExist) {
			err = asUsage(err) // --html names a directory that does not exist
		}
		return nil, err
	}
	return &journalReportDoc{Journal: path, HTML: c.html, Bytes: page.Len(), Runs: st.Runs, Detailed: st.Detailed}, nil
}
