package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJournalReport_WritesTheHTMLFile(t *testing.T) {
	f, _ := restored(t, 2)
	out := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(out, []byte("an older report"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, exitOK, nil, "journal", "report", "--html", out, "--db", f.db)
	if !strings.HasPrefix(r.stdout, "wrote "+out) || !strings.Contains(r.stdout, ": 2 runs of ") {
		t.Errorf("journal report:\n%s", r.stdout)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", `id="run-1"`, `id="run-2"`, "</html>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left: %v", err)
	}
	var doc struct {
		Journal  string `json:"journal"`
		HTML     string `json:"html"`
		Bytes    int    `json:"bytes"`
		Runs     int    `json:"runs"`
		Detailed int    `json:"detailed"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "report", "--html", out, "--db", f.db, "--json"), &doc)
	if doc.HTML != out || doc.Runs != 2 || doc.Detailed != 2 || doc.Bytes < len(page)-100 {
		t.Errorf("journal report --json = %+v (the page is %d bytes)", doc, len(page))
	}

	mustRun(t, exitUsage, nil, "journal", "report", "--db", f.db)
	for _, args := range [][]string{
		{"--run", "9"},
		{"--run", "1", "--since", "1h"},
		{"--recent", "-1"},
		{"--until", "tomorrow"},
	} {
		mustRun(t, exitUsage, nil, append([]string{"journal", "report", "--html", out, "--db", f.db}, args...)...)
	}
	mustRun(t, exitUsage, nil, "journal", "report", "--html", filepath.Join(t.TempDir(), "no", "such", "dir.html"), "--db", f.db)
}

// TestJournalReport_SelectsTheRunsShownInDetail: --recent, --run and a
// time range choose the runs with a section of their own; the summary
// counts every run whatever they choose.
func TestJournalReport_SelectsTheRunsShownInDetail(t *testing.T) {
	f, _ := restored(t, 3)
	out := filepath.Join(t.TempDir(), "report.html")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		args []string
		want []int // runs with a section
	}{
		{nil, []int{1, 2, 3}},
		{[]string{"--recent", "1"}, []int{3}},
		{[]string{"--recent", "0"}, nil},
		{[]string{"--run", "2"}, []int{2}},
		{[]string{"--since", "1h"}, []int{1, 2, 3}},
		{[]string{"--since", future}, nil},
		{[]string{"--until", "1h"}, nil},
	} {
		r := mustRun(t, exitOK, nil, append([]string{"journal", "report", "--html", out, "--db", f.db}, tc.args...)...)
		if !strings.Contains(r.stdout, fmt.Sprintf(": 3 runs of %s, %d in detail\n", f.db+".kvrflow/journal.db", len(tc.want))) {
			t.Errorf("journal report %v:\n%s", tc.args, r.stdout)
		}
		page, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for id := 1; id <= 3; id++ {
			if got, want := strings.Contains(string(page), fmt.Sprintf(`<section id="run-%d">`, id)), slices.Contains(tc.want, id); got != want {
				t.Errorf("journal report %v: run %d in detail: %v, want %v", tc.args, id, got, want)
			}
		}
		if !strings.Contains(string(page), "<h2>All 3 runs</h2>") || !strings.Contains(string(page), "<tr><td>committed</td><td>3</td></tr>") {
			t.Errorf("journal report %v: the summary does not count the 3 committed runs", tc.args)
		}
	}
}
