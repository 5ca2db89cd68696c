package kvrflow

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kvrflow/kvrflow/journal"
)

// ExportSchema names the export format; DESIGN.md documents it. Fields
// are only ever added under this name: consumers must ignore fields they
// do not know.
const ExportSchema = "kvrflow.journal.export/1"

// ExportOptions select what Export writes.
type ExportOptions struct {
	Format string    // json (default), ndjson or csv
	Run    uint64    // only this run (0: all)
	Since  time.Time // only events at or after this time (zero: all)
}

// ExportEvent is one event with its run's fields: an ndjson line, a csv
// row, or an element of a run's events in the json document.
type ExportEvent struct {
	Schema     string          `json:"schema,omitempty"`
	Run        uint64          `json:"run"`
	RunKind    string          `json:"run_kind,omitempty"`
	RunSource  string          `json:"run_source,omitempty"`
	RunTarget  string          `json:"run_target,omitempty"`
	RunOutcome string          `json:"run_outcome,omitempty"`
	Seq        uint64          `json:"seq"`
	Time       time.Time       `json:"time"`
	From       string          `json:"from"`
	Event      string          `json:"event"`
	To         string          `json:"to"`
	Details    json.RawMessage `json:"details,omitempty"`
	Prev       string          `json:"prev"`
	Hash       string          `json:"hash"`
}

// ExportRun is a run in the json document.
type ExportRun struct {
	journal.Run
	Events []ExportEvent `json:"events_list"`
}

// ExportDocument is the json format: one document.
type ExportDocument struct {
	Schema  string      `json:"schema"`
	Journal string      `json:"journal"`
	Runs    []ExportRun `json:"runs"`
}

// CSVHeader is the first row of the csv format.
var CSVHeader = []string{"schema", "run", "run_kind", "run_source", "run_target", "run_outcome", "seq", "time", "from", "event", "to", "details", "prev", "hash"}

// Export writes the journal at path (read-only) to w in opts.Format.
func Export(w io.Writer, path string, opts ExportOptions) error {
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer j.Close()
	var runs []journal.Run
	if opts.Run != 0 {
		r, err := j.Run(opts.Run)
		if err != nil {
			return err
		}
		runs = []journal.Run{r}
	} else if runs, err = j.Runs(0); err != nil {
		return err
	}
	doc := ExportDocument{Schema: ExportSchema, Journal: path, Runs: []ExportRun{}}
	var cw *csv.Writer
	switch opts.Format {
	case "", "json", "ndjson":
	case "csv":
		cw = csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown export format %q: want json, ndjson or csv", opts.Format)
	}
	enc := json.NewEncoder(w)
	for _, r := range runs {
		evs, err := j.Events(r.ID)
		if err != nil {
			return err
		}
		er := ExportRun{Run: r, Events: []ExportEvent{}}
		for _, ev := range evs {
			if !opts.Since.IsZero() && ev.Time.Before(opts.Since) {
				continue
			}
			e := ExportEvent{Schema: ExportSchema, Run: r.ID, RunKind: r.Kind, RunSource: r.Source, RunTarget: r.Target, RunOutcome: r.Outcome,
				Seq: ev.Seq, Time: ev.Time, From: ev.From, Event: ev.Event, To: ev.To, Details: ev.Details, Prev: ev.Prev, Hash: ev.Hash}
			switch opts.Format {
			case "ndjson":
				if err := enc.Encode(e); err != nil {
					return err
				}
			case "csv":
				if err := cw.Write([]string{ExportSchema, strconv.FormatUint(r.ID, 10), r.Kind, r.Source, r.Target, r.Outcome,
					strconv.FormatUint(ev.Seq, 10), ev.Time.Format(time.RFC3339Nano), ev.From, ev.Event, ev.To, string(ev.Details), ev.Prev, ev.Hash}); err != nil {
					return err
				}
			default:
				e.Schema, e.RunKind, e.RunSource, e.RunTarget, e.RunOutcome = "", "", "", "", ""
				er.Events = append(er.Events, e)
			}
		}
		if len(er.Events) > 0 || opts.Since.IsZero() {
			doc.Runs = append(doc.Runs, er)
		}
	}
	switch opts.Format {
	case "csv":
		cw.Flush()
		return cw.Error()
	case "ndjson":
		return nil
	}
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
