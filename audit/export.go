package audit

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
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

// ExportOptions select what Export and ExportDoc write.
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

// ExportDocument is the json format: one document. Export streams it;
// ExportDoc returns it whole.
type ExportDocument struct {
	Schema  string      `json:"schema"`
	Journal string      `json:"journal"`
	Runs    []ExportRun `json:"runs"`
}

// CSVHeader is the first row of the csv format.
var CSVHeader = []string{"schema", "run", "run_kind", "run_source", "run_target", "run_outcome", "seq", "time", "from", "event", "to", "details", "prev", "hash"}

// Export writes the journal at path (read-only) to w in opts.Format,
// streaming: ndjson and csv write each event as it is read, json writes
// the document's runs one at a time (it holds one run, not the journal).
// An unknown format is an error matching ErrFormat, and writes nothing;
// opts.Run naming no run is journal.ErrNotFound. On an error after the
// first bytes, w holds a truncated export.
func Export(w io.Writer, path string, opts ExportOptions) error {
	var write func(r journal.Run, evs []journal.Event) error
	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	runs := 0
	switch opts.Format {
	case "", "json":
		write = func(r journal.Run, evs []journal.Event) error {
			er := exportRun(r, evs, opts.Since)
			if len(er.Events) == 0 && !opts.Since.IsZero() {
				return nil
			}
			b, err := json.MarshalIndent(er, "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n    "
			if runs == 0 {
				sep = "\n    "
			}
			runs++
			bw.WriteString(sep)
			_, err = bw.Write(b)
			return err
		}
	case "ndjson":
		enc := json.NewEncoder(bw)
		write = func(r journal.Run, evs []journal.Event) error {
			for _, ev := range evs {
				if !opts.Since.IsZero() && ev.Time.Before(opts.Since) {
					continue
				}
				if err := enc.Encode(exportEvent(r, ev)); err != nil {
					return err
				}
			}
			return nil
		}
	case "csv":
		cw = csv.NewWriter(bw)
		write = func(r journal.Run, evs []journal.Event) error {
			for _, ev := range evs {
				if !opts.Since.IsZero() && ev.Time.Before(opts.Since) {
					continue
				}
				if err := cw.Write([]string{ExportSchema, strconv.FormatUint(r.ID, 10), r.Kind, r.Source, r.Target, r.Outcome,
					strconv.FormatUint(ev.Seq, 10), ev.Time.Format(time.RFC3339Nano), ev.From, ev.Event, ev.To, string(ev.Details), ev.Prev, ev.Hash}); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		return fmt.Errorf("%w %q: want json, ndjson or csv", ErrFormat, opts.Format)
	}
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer j.Close()
	if opts.Run != 0 {
		// Fail before writing anything if there is no such run.
		if _, err := j.Run(opts.Run); err != nil {
			return err
		}
	}
	switch opts.Format {
	case "", "json":
		bw.WriteString("{\n  \"schema\": ")
		writeJSONString(bw, ExportSchema)
		bw.WriteString(",\n  \"journal\": ")
		writeJSONString(bw, path)
		bw.WriteString(",\n  \"runs\": [")
	case "csv":
		if err := cw.Write(CSVHeader); err != nil {
			return err
		}
	}
	if err := eachRun(j, opts, write); err != nil {
		return err
	}
	switch opts.Format {
	case "", "json":
		if runs > 0 {
			bw.WriteString("\n  ")
		}
		bw.WriteString("]\n}\n")
	case "csv":
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ExportDoc returns the json format's document of the journal at path
// (read-only), whole: every run selected, with its events, in memory.
// opts.Format is ignored.
func ExportDoc(path string, opts ExportOptions) (*ExportDocument, error) {
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	if opts.Run != 0 {
		if _, err := j.Run(opts.Run); err != nil {
			return nil, err
		}
	}
	doc := &ExportDocument{Schema: ExportSchema, Journal: path, Runs: []ExportRun{}}
	err = eachRun(j, opts, func(r journal.Run, evs []journal.Event) error {
		if er := exportRun(r, evs, opts.Since); len(er.Events) > 0 || opts.Since.IsZero() {
			doc.Runs = append(doc.Runs, er)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// errStop ends a Scan early.
var errStop = errors.New("stop")

// eachRun calls fn with the runs opts selects, oldest first, and their
// events, one run at a time.
func eachRun(j *journal.Journal, opts ExportOptions, fn func(r journal.Run, evs []journal.Event) error) error {
	err := j.Scan(opts.Run, journal.AllEvents, func(r journal.Run, evs []journal.Event) error {
		if opts.Run != 0 && r.ID != opts.Run {
			return errStop
		}
		return fn(r, evs)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// exportEvent is ev as an ndjson line: with its run's fields.
func exportEvent(r journal.Run, ev journal.Event) ExportEvent {
	return ExportEvent{Schema: ExportSchema, Run: r.ID, RunKind: r.Kind, RunSource: r.Source, RunTarget: r.Target, RunOutcome: r.Outcome,
		Seq: ev.Seq, Time: ev.Time, From: ev.From, Event: ev.Event, To: ev.To, Details: ev.Details, Prev: ev.Prev, Hash: ev.Hash}
}

// exportRun is r in the json document, with its events at or after since.
func exportRun(r journal.Run, evs []journal.Event, since time.Time) ExportRun {
	er := ExportRun{Run: r, Events: make([]ExportEvent, 0, len(evs))}
	for _, ev := range evs {
		if !since.IsZero() && ev.Time.Before(since) {
			continue
		}
		er.Events = append(er.Events, ExportEvent{Run: r.ID, Seq: ev.Seq, Time: ev.Time, From: ev.From, Event: ev.Event, To: ev.To,
			Details: ev.Details, Prev: ev.Prev, Hash: ev.Hash})
	}
	return er
}

// writeJSONString writes s as a JSON string, escaped as encoding/json's
// Encoder escapes it.
func writeJSONString(w *bufio.Writer, s string) {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(s) // a string always encodes
	w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
