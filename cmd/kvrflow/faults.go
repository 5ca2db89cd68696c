package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	// kvrflow's packages register their fault points at init: steps
	// (step.STATE.begin/end), journal and internal/fsx. Importing kvrflow
	// imports them all.
	_ "github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
)

var faultsCommand = &command{
	name:    "faults",
	args:    "[flags]",
	summary: "list the named fault points a fault spec can trigger",
	about: `List every named fault point and what it interrupts. A fault spec, given to
restore, undo, recover or quarantine purge with --fault or in $KVRFLOW_FAULT,
triggers them:

  POINT:ACTION[@N][,POINT:ACTION[@N]...]

ACTION is crash (the process kills itself with SIGKILL, like kill -9), eio,
enospc or delay=DURATION; @N fires on the N-th hit of the point only.`,
	example: "KVRFLOW_FAULT=fs.after-exchange:crash kvrflow restore --from /backups/b1 --db /tmp/db",
	new:     func() runner { return &faultsCmd{} },
}

type faultsCmd struct{ common }

func (c *faultsCmd) flags(fs *flag.FlagSet) { c.define(fs, false) }

// faultPoint is one point in faults's --json document. Group is the
// workflow whose step boundary it is (restore, undo), or the layer it is
// in (fs, journal).
type faultPoint struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	What  string `json:"what"`
}

// faultsDoc is faults's --json document: every point, sorted by name, and
// the earlier names still accepted for some of them.
type faultsDoc struct {
	Points  []faultPoint      `json:"points"`
	Aliases map[string]string `json:"aliases"`
	exitReport
}

func (d *faultsDoc) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	group := ""
	for _, p := range d.Points {
		if p.Group != group {
			if group != "" {
				fmt.Fprintln(tw)
			}
			group = p.Group
			fmt.Fprintf(tw, "# %s\n", groupTitle(group))
		}
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.What)
	}
	tw.Flush()
	if len(d.Aliases) > 0 {
		old := slices.Sorted(maps.Keys(d.Aliases))
		fmt.Fprintf(w, "\n# earlier names, still accepted: ")
		for i, o := range old {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%s = %s", o, d.Aliases[o])
		}
		fmt.Fprintln(w)
	}
}

// groupTitle says what a group of points is.
func groupTitle(g string) string {
	switch g {
	case "fs":
		return "fs: around each durable file-system operation"
	case "journal":
		return "journal: around each journal commit"
	}
	return g + " workflow: step boundaries"
}

func (c *faultsCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if _, err := c.logger(o); err != nil { // nothing to log; the flags are still checked
		return nil, err
	}
	doc := &faultsDoc{Points: []faultPoint{}, Aliases: fault.Aliases()}
	for _, p := range fault.Points() {
		g, _, _ := strings.Cut(p.Name, ".")
		doc.Points = append(doc.Points, faultPoint{Group: g, Name: p.Name, What: p.What})
	}
	return doc, nil
}
