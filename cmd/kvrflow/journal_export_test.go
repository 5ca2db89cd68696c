package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/audit"
)

func TestJournalExport_FormatsParseAndMatch(t *testing.T) {
	f, _ := restored(t, 2)
	var doc audit.ExportDocument
	r := mustRun(t, exitOK, nil, "journal", "export", "--db", f.db)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("journal export: %v\n%s", err, r.stdout)
	}
	events := 0
	for _, run := range doc.Runs {
		events += len(run.Events)
		if uint64(len(run.Events)) != run.Run.Events {
			t.Errorf("run %d: %d events exported, its record counts %d", run.ID, len(run.Events), run.Run.Events)
		}
	}
	if doc.Schema != audit.ExportSchema || len(doc.Runs) != 2 || events == 0 {
		t.Fatalf("journal export: schema %q, %d runs, %d events", doc.Schema, len(doc.Runs), events)
	}

	var withExit struct {
		audit.ExportDocument
		ExitCode int `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "export", "--db", f.db, "--json"), &withExit)
	if len(withExit.Runs) != 2 || withExit.Runs[1].Events[0].Hash != doc.Runs[1].Events[0].Hash {
		t.Errorf("journal export --json differs from --format json")
	}

	nd := mustRun(t, exitOK, nil, "journal", "export", "--format", "ndjson", "--since", "24h", "--db", f.db)
	lines := strings.Split(strings.TrimSpace(nd.stdout), "\n")
	if len(lines) != events {
		t.Errorf("ndjson: %d lines, %d events", len(lines), events)
	}
	for _, l := range lines {
		var e audit.ExportEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Schema != audit.ExportSchema || e.Hash == "" {
			t.Errorf("ndjson line %q: %v", l, err)
		}
	}

	c := mustRun(t, exitOK, nil, "journal", "export", "--format", "csv", "--run", "2", "--db", f.db)
	rows, err := csv.NewReader(strings.NewReader(c.stdout)).ReadAll()
	if err != nil || len(rows) != 1+len(doc.Runs[1].Events) || strings.Join(rows[0], ",") != strings.Join(audit.CSVHeader, ",") {
		t.Errorf("csv of run 2: %d rows (%v), want a header and %d", len(rows), err, len(doc.Runs[1].Events))
	}

	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	none := mustRun(t, exitOK, nil, "journal", "export", "--format", "ndjson", "--since", future, "--db", f.db)
	if none.stdout != "" {
		t.Errorf("--since %s exported:\n%s", future, none.stdout)
	}
}

func TestJournalExport_BadRequestsExit2(t *testing.T) {
	f, _ := restored(t, 1)
	for _, args := range [][]string{
		{"--format", "xml"},
		{"--since", "yesterday"},
		{"--since", "-5h"},
		{"--format", "csv", "--json"},
		{"--run", "9"},
		{"extra"},
	} {
		r := mustRun(t, exitUsage, nil, append([]string{"journal", "export", "--db", f.db}, args...)...)
		if !strings.HasPrefix(r.stderr, "Error: ") {
			t.Errorf("kvrflow journal export %q: stderr %q", args, r.stderr)
		}
	}
	var doc struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitUsage, nil, "journal", "export", "--db", f.db, "--run", "9", "--json"), &doc)
	if doc.ExitCode != exitUsage || !strings.Contains(doc.Error, "no such run") {
		t.Errorf("journal export --run 9 --json = %+v", doc)
	}
}
