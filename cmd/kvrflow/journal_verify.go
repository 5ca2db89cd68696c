package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
)

var journalVerifyCommand = &command{
	name:    "journal verify",
	args:    "--db DIR | --journal PATH [flags]",
	summary: "check the journal's hash chains and replay every run through the FSM",
	about: `Check that the journal can be trusted: every record's SHA-256 and every link
of the hash chain (each event to the previous one, each run to the previous
run), sequence numbers contiguous, times never going back, and every run
replayed through the restore state machine the engine uses: each transition
legal, each ended run in the terminal state of its outcome. Runs still in
flight are listed, not faulted.

It prints the runs and events checked, the runs in flight and, if any, the
first bad record (run, sequence number, what is wrong) and how many problems
there are. Exit code 4 if there is any problem, or if the journal cannot be
verified (unreadable, or written by an older kvrflow and not yet migrated:
any restore, recover or prune migrates it); 0 otherwise. The journal is
opened read-only.`,
	example: "kvrflow journal verify --db /var/lib/app/db",
	new:     func() runner { return &journalVerifyCmd{} },
}

type journalVerifyCmd struct{ journalFlags }

// journalVerifyDoc is journal verify's --json document: audit.VerifyReport
// (journal, runs, events, in_flight, problems in run and sequence order)
// and first_problem, the first of them, when there is one.
type journalVerifyDoc struct {
	audit.VerifyReport
	FirstProblem *journal.Problem `json:"first_problem,omitempty"`
	exitReport
}

func (d *journalVerifyDoc) text(w io.Writer) {
	if d.Journal == "" {
		return
	}
	inflight := "none"
	if len(d.InFlight) > 0 {
		var ids []string
		for _, id := range d.InFlight {
			ids = append(ids, fmt.Sprint(id))
		}
		inflight = "run " + strings.Join(ids, ", ")
	}
	fmt.Fprintf(w, "journal %s: %d runs, %d events checked; in flight: %s\n", d.Journal, d.Runs, d.Events, inflight)
	if d.FirstProblem == nil {
		fmt.Fprintln(w, "ok: every hash, link and transition checks")
		return
	}
	fmt.Fprintf(w, "%s, the first listed first:\n", plural(len(d.Problems), "problem"))
	for _, p := range d.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func (c *journalVerifyCmd) run(_ context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	path, err := c.path(o)
	if err != nil {
		return nil, err
	}
	rep, err := audit.Verify(path, audit.Default())
	if errors.Is(err, journal.ErrOldSchema) {
		return nil, fmt.Errorf("%w: %w", errVerifyFailed, err)
	}
	if err != nil {
		return nil, noJournal(path, err)
	}
	doc := &journalVerifyDoc{VerifyReport: *rep}
	if rep.OK() {
		return doc, nil
	}
	doc.FirstProblem = &rep.Problems[0]
	return doc, fmt.Errorf("%w: %s: %s, the first: %s", errVerifyFailed, path, plural(len(rep.Problems), "problem"), rep.Problems[0])
}
