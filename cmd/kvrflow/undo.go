package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/steps"
)

var undoCommand = &command{
	name:    "undo",
	args:    "--db DIR [flags]",
	summary: "bring back the database a restore --keep-old replaced",
	about: `Bring back the newest database kept for DIR (by restore --keep-old, or by an
earlier undo): it takes DIR's place atomically, as a restore's commit does, and
the database DIR held is kept in turn, so undo twice is a redo. Nothing is
removed. First any run left in flight for DIR is finished or rolled back.
DIR's LOCK (and the kept database's) is held throughout: while a server has
either open, undo exits 3. With nothing kept it exits 2 and changes nothing.
kvrflow status lists the kept databases.`,
	example: "kvrflow undo --db /var/lib/app/db",
	new:     func() runner { return &undoCmd{} },
}

type undoCmd struct {
	common
	db, fault  string
	noExchange bool
}

func (c *undoCmd) flags(fs *flag.FlagSet) {
	c.define(fs, true)
	fs.StringVar(&c.db, "db", "", "the database directory `DIR` (required)")
	fs.BoolVar(&c.noExchange, "no-exchange", false, "commit with two renames instead of one renameat2(RENAME_EXCHANGE)")
	fs.StringVar(&c.fault, "fault", "", "fault `SPEC` for testing, POINT:ACTION[@N],... (default $KVRFLOW_FAULT; see kvrflow faults)")
}

// undoDoc is undo's --json document: the outcome, the undo run as
// journaled, the runs recovered first.
type undoDoc struct {
	DB      string `json:"db"`
	Outcome string `json:"outcome,omitempty"`
	*kvrflow.Result
	exitReport
}

func (d *undoDoc) text(w io.Writer) {
	if d.Result == nil {
		return
	}
	printRecovered(w, d.Recovered)
	r := d.Run
	switch r.Outcome {
	case steps.OutcomeCommitted:
		fmt.Fprintf(w, "undone by run %d: %s holds the database kept at %s; the one it held is kept as %s (undo again to redo)\n",
			r.ID, r.Target, orDash(d.Summary.BroughtBack), orDash(d.Summary.Kept))
	case steps.OutcomeRolledBack:
		fmt.Fprintf(w, "undo run %d rolled back: %s holds the database it held before; the kept one is still kept\n", r.ID, r.Target)
	}
}

func (c *undoCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db); err != nil {
		return nil, err
	}
	faults, log, report, err := c.faultsAndLogger(o, c.fault)
	if err != nil {
		return nil, err
	}
	defer report()
	res, err := kvrflow.Undo(ctx, kvrflow.Options{DB: c.db, Journal: c.journal, Faults: faults, Log: log, NoExchange: c.noExchange})
	if err != nil && exitCode(err) == exitInFlight {
		err = fmt.Errorf("%w; the run is still in flight: 'kvrflow recover --db %s' finishes it", err, c.db)
	}
	if res != nil && res.Run.ID == 0 && len(res.Recovered) == 0 {
		res = nil // no run began: nothing to show but the error
	}
	doc := &undoDoc{DB: absOr(c.db), Result: res}
	if res != nil {
		doc.Outcome = res.Run.Outcome
	}
	return doc, err
}

// keepOldFlag is --keep-old: given alone it keeps one generation;
// --keep-old=N keeps N; 0 (the default) keeps none.
type keepOldFlag struct{ n *int }

func (f keepOldFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return strconv.Itoa(*f.n)
}

func (f keepOldFlag) Set(s string) error {
	if s == "true" {
		*f.n = 1
		return nil
	}
	if s == "false" {
		*f.n = 0
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return errors.New("want a number of generations (0 or more)")
	}
	*f.n = v
	return nil
}
