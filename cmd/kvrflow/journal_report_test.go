package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "report", "--html", out, "--db", f.db, "--json"), &doc)
	if doc.HTML != out || doc.Runs != 2 || doc.Bytes < len(page)-100 {
		t.Errorf("journal report --json = %+v (the page is %d bytes)", doc, len(page))
	}

	mustRun(t, exitUsage, nil, "journal", "report", "--db", f.db)
	mustRun(t, exitUsage, nil, "journal", "report", "--html", filepath.Join(t.TempDir(), "no", "such", "dir.html"), "--db", f.db)
}
