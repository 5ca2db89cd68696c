package audit_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
)

// journalContents reads every run and its events from the journal at
// path.
func journalContents(t *testing.T, path string) ([]journal.Run, map[uint64][]journal.Event) {
	t.Helper()
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	runs, err := j.Runs(0)
	must(t, err)
	evs := map[uint64][]journal.Event{}
	for _, r := range runs {
		evs[r.ID], err = j.Events(r.ID)
		must(t, err)
	}
	return runs, evs
}

// sameEvent compares an exported event with the journal's, details byte
// for byte after compaction (the json document indents them).
func sameEvent(t *testing.T, got audit.ExportEvent, want journal.Event) {
	t.Helper()
	var compact bytes.Buffer
	if len(got.Details) > 0 {
		must(t, json.Compact(&compact, got.Details))
	}
	if got.Run != want.Run || got.Seq != want.Seq || got.From != want.From || got.Event != want.Event || got.To != want.To ||
		!got.Time.Equal(want.Time) || got.Prev != want.Prev || got.Hash != want.Hash || !bytes.Equal(compact.Bytes(), want.Details) {
		t.Errorf("exported event\n %+v (details %s)\nthe journal's\n %+v (details %s)", got, compact.Bytes(), want, want.Details)
	}
}

func TestExport_JSONRoundTripsTheJournal(t *testing.T) {
	path := auditJournal(t)
	runs, evs := journalContents(t, path)
	var out bytes.Buffer
	must(t, audit.Export(&out, path, audit.ExportOptions{Format: "json"}))
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	var doc audit.ExportDocument
	must(t, dec.Decode(&doc))
	if doc.Schema != audit.ExportSchema || doc.Journal != path || len(doc.Runs) != len(runs) {
		t.Fatalf("document schema %q journal %q with %d runs, want %q %q %d", doc.Schema, doc.Journal, len(doc.Runs), audit.ExportSchema, path, len(runs))
	}
	for i, er := range doc.Runs {
		r := runs[i]
		if er.ID != r.ID || er.State != r.State || er.Outcome != r.Outcome || er.Run.Events != r.Events || er.Source != r.Source ||
			er.FirstHash != r.FirstHash || er.FinalHash != r.FinalHash || er.PrevRun != r.PrevRun || !er.Start.Equal(r.Start) || !er.End.Equal(r.End) {
			t.Errorf("exported run\n %+v\nthe journal's\n %+v", er.Run, r)
		}
		if len(er.Events) != len(evs[r.ID]) {
			t.Fatalf("run %d: %d events exported, the journal holds %d", r.ID, len(er.Events), len(evs[r.ID]))
		}
		for k, e := range er.Events {
			sameEvent(t, e, evs[r.ID][k])
			if e.Schema != "" || e.RunTarget != "" {
				t.Errorf("run %d event %d repeats its run's fields inside the document", r.ID, e.Seq)
			}
		}
	}
}

// TestExport_NDJSONLinesCarryEnoughToRecomputeEveryHash: each line is an
// event with its run's fields, and an outside tool, knowing only the
// canonical encoding DESIGN.md documents, recomputes its hash from the
// line and links it to the previous line of its run.
func TestExport_NDJSONLinesCarryEnoughToRecomputeEveryHash(t *testing.T) {
	path := auditJournal(t)
	runs, evs := journalContents(t, path)
	var out bytes.Buffer
	must(t, audit.Export(&out, path, audit.ExportOptions{Format: "ndjson"}))
	byRun := map[uint64][]audit.ExportEvent{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e audit.ExportEvent
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if e.Schema != audit.ExportSchema || e.RunTarget == "" || e.RunKind != "restore" {
			t.Errorf("line %q lacks the schema or its run's fields", sc.Text())
		}
		byRun[e.Run] = append(byRun[e.Run], e)
	}
	must(t, sc.Err())
	for _, r := range runs {
		got := byRun[r.ID]
		if len(got) != len(evs[r.ID]) {
			t.Fatalf("run %d: %d lines, %d events", r.ID, len(got), len(evs[r.ID]))
		}
		prev := r.FirstHash
		for k, e := range got {
			sameEvent(t, e, evs[r.ID][k])
			if !bytes.Equal(e.Details, evs[r.ID][k].Details) {
				t.Errorf("run %d event %d: details %s, stored %s", r.ID, e.Seq, e.Details, evs[r.ID][k].Details)
			}
			if e.RunOutcome != r.Outcome {
				t.Errorf("run %d event %d: run_outcome %q, the run's %q", r.ID, e.Seq, e.RunOutcome, r.Outcome)
			}
			// The canonical encoding, per DESIGN.md: run, seq, from, event,
			// to, time, details (if any), prev.
			canonical, err := json.Marshal(struct {
				Run     uint64          `json:"run"`
				Seq     uint64          `json:"seq"`
				From    string          `json:"from"`
				Event   string          `json:"event"`
				To      string          `json:"to"`
				Time    time.Time       `json:"time"`
				Details json.RawMessage `json:"details,omitempty"`
				Prev    string          `json:"prev"`
			}{e.Run, e.Seq, e.From, e.Event, e.To, e.Time, e.Details, e.Prev})
			must(t, err)
			if sum := sha256.Sum256(canonical); hex.EncodeToString(sum[:]) != e.Hash || e.Prev != prev {
				t.Errorf("run %d event %d: hash of %s is not %s, or prev %s is not %s", r.ID, e.Seq, canonical, e.Hash, e.Prev, prev)
			}
			prev = e.Hash
		}
		if prev != r.FinalHash {
			t.Errorf("run %d: last exported hash %s, the run's final hash %s", r.ID, prev, r.FinalHash)
		}
	}
}

func TestExport_CSVHasTheHeaderAndOneRowPerEvent(t *testing.T) {
	path := auditJournal(t)
	runs, evs := journalContents(t, path)
	var out bytes.Buffer
	must(t, audit.Export(&out, path, audit.ExportOptions{Format: "csv"}))
	rows, err := csv.NewReader(&out).ReadAll()
	must(t, err)
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(audit.CSVHeader, ",") {
		t.Fatalf("csv header %v, want %v", rows[:min(1, len(rows))], audit.CSVHeader)
	}
	i := 1
	for _, r := range runs {
		for _, ev := range evs[r.ID] {
			if i >= len(rows) {
				t.Fatalf("csv has %d rows, the journal more events", len(rows)-1)
			}
			row := rows[i]
			i++
			if row[0] != audit.ExportSchema || row[1] != strconv.FormatUint(r.ID, 10) || row[6] != strconv.FormatUint(ev.Seq, 10) ||
				row[8] != ev.From || row[9] != ev.Event || row[10] != ev.To || row[11] != string(ev.Details) || row[12] != ev.Prev || row[13] != ev.Hash {
				t.Errorf("csv row %v, the journal's run %d event %+v", row, r.ID, ev)
			}
			if tm, err := time.Parse(time.RFC3339Nano, row[7]); err != nil || !tm.Equal(ev.Time) {
				t.Errorf("csv time %q, the event's %s", row[7], ev.Time)
			}
		}
	}
	if i != len(rows) {
		t.Errorf("csv has %d rows, the journal %d events", len(rows)-1, i-1)
	}
}

func TestExport_RunAndSinceSelect(t *testing.T) {
	path := auditJournal(t)
	runs, evs := journalContents(t, path)
	var out bytes.Buffer
	must(t, audit.Export(&out, path, audit.ExportOptions{Run: auditRolledBack}))
	var doc audit.ExportDocument
	must(t, json.Unmarshal(out.Bytes(), &doc))
	if len(doc.Runs) != 1 || doc.Runs[0].ID != auditRolledBack || len(doc.Runs[0].Events) != len(evs[auditRolledBack]) {
		t.Errorf("--run %d exported %d runs", auditRolledBack, len(doc.Runs))
	}

	// Since the time of run 3's third event: run 3 from that event on, and
	// run 4.
	since := evs[auditRolledBack][2].Time
	out.Reset()
	must(t, audit.Export(&out, path, audit.ExportOptions{Format: "ndjson", Since: since}))
	want := 0
	for _, r := range runs {
		for _, ev := range evs[r.ID] {
			if !ev.Time.Before(since) {
				want++
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != want || want == 0 {
		t.Errorf("--since %s: %d lines, want %d", since, len(lines), want)
	}
	for _, line := range lines {
		var e audit.ExportEvent
		must(t, json.Unmarshal([]byte(line), &e))
		if e.Time.Before(since) {
			t.Errorf("--since %s exported an event of %s", since, e.Time)
		}
	}

	if err := audit.Export(&out, path, audit.ExportOptions{Run: 99}); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("export of run 99 = %v, want ErrNotFound", err)
	}
	if err := audit.Export(&out, path, audit.ExportOptions{Format: "xml"}); !errors.Is(err, audit.ErrFormat) {
		t.Errorf("export as xml = %v, want ErrFormat", err)
	}
}

// TestExport_StreamedJSONIsTheDocument: the json format, written run by
// run, is byte for byte the document ExportDoc returns encoded whole (as
// an indented json.Encoder writes it), for every run, one run, and a
// selection with no event (an empty runs array).
func TestExport_StreamedJSONIsTheDocument(t *testing.T) {
	path := auditJournal(t)
	for _, opts := range []audit.ExportOptions{
		{},
		{Run: auditRolledBack},
		{Since: time.Now().Add(time.Hour)},
	} {
		var streamed, whole bytes.Buffer
		must(t, audit.Export(&streamed, path, opts))
		doc, err := audit.ExportDoc(path, opts)
		must(t, err)
		enc := json.NewEncoder(&whole)
		enc.SetIndent("", "  ")
		must(t, enc.Encode(doc))
		if !bytes.Equal(streamed.Bytes(), whole.Bytes()) {
			t.Errorf("%+v: the streamed export differs from the document:\n%s\nwant\n%s", opts, streamed.Bytes(), whole.Bytes())
		}
	}
	if _, err := audit.ExportDoc(path, audit.ExportOptions{Run: 99}); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("ExportDoc of run 99 = %v, want ErrNotFound", err)
	}
}
