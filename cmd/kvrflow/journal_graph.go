package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

var journalGraphCommand = &command{
	name:    "journal graph",
	args:    "[RUN] [--format mermaid|dot] [--db DIR | --journal PATH] [flags]",
	summary: "draw the restore state machine, with a run's path marked",
	about: `Draw the restore state machine, as a Mermaid state diagram (default) or a
Graphviz dot graph, drawn by looplab/fsm's visualizers. With RUN (and --db
or --journal), the run's path is marked: in dot the transitions it took are
blue and the states it visited filled; in Mermaid the visited states get
the class "visited". Without RUN it draws the bare machine and reads no
journal.

--json prints {"format", "run", "graph"}: the graph text in a string.`,
	example: "kvrflow journal graph 3 --format dot --db /var/lib/app/db | dot -Tsvg > run3.svg",
	new:     func() runner { return &journalGraphCmd{} },
}

type journalGraphCmd struct {
	journalFlags
	format string
}

func (c *journalGraphCmd) flags(fs *flag.FlagSet) {
	c.journalFlags.flags(fs)
	fs.StringVar(&c.format, "format", "mermaid", "graph `FORMAT`: mermaid or dot")
}

// journalGraphDoc is journal graph's --json document: the format, the run
// whose path is marked (0: none) and the graph's text.
type journalGraphDoc struct {
	Format string `json:"format"`
	Run    uint64 `json:"run"`
	Graph  string `json:"graph"`
	exitReport
}

func (d *journalGraphDoc) text(w io.Writer) { fmt.Fprint(w, d.Graph) }

func (c *journalGraphCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 1 {
		return nil, usagef("journal graph wants at most one RUN id, got %d arguments", len(args))
	}
	if c.format != "mermaid" && c.format != "dot" {
		return nil, usagef("bad --format %q: want mermaid or dot", c.format)
	}
	doc := &journalGraphDoc{Format: c.format}
	var evs []journal.Event
	def := steps.Restore
	if len(args) == 1 {
		id, err := parseRun(args[0])
		if err != nil {
			return nil, err
		}
		if def, evs, err = c.events(o, id); err != nil {
			return nil, err
		}
		doc.Run = id
	} else if _, err := c.logger(o); err != nil { // the flags are still checked
		return nil, err
	}
	g, err := audit.Graph(def, c.format, evs)
	if err != nil {
		return nil, err
	}
	doc.Graph = g
	return doc, nil
}

// events returns run id's workflow (by its kind) and events from the
// journal.
func (c *journalGraphCmd) events(o *stdio, id uint64) (*fsm.Definition, []journal.Event, error) {
	j, err := c.open(o)
	if err != nil {
		return nil, nil, err
	}
	defer j.Close()
	r, err := j.Run(id)
	if errors.Is(err, journal.ErrNotFound) {
		return nil, nil, asUsage(fmt.Errorf("%s: %w", j.Path(), err))
	}
	if err != nil {
		return nil, nil, err
	}
	def := audit.Default()[r.Kind]
	if def == nil {
		return nil, nil, fmt.Errorf("%s: run %d of kind %q: %w", j.Path(), id, r.Kind, audit.ErrUnknownKind)
	}
	evs, err := j.Events(id)
	return def, evs, err
}
