package main

import (
	"strings"
	"testing"
)

func TestFaults_ListsThePointsOfEveryPackage(t *testing.T) {
	r := mustRun(t, exitOK, nil, "faults")
	for _, p := range []string{"fs.before-rename", "fs.write", "journal.after-commit", "restore.commit.begin", "restore.finish.begin", "undo.commit.begin", "undo.finish.end"} {
		if !strings.Contains(r.stdout, p+" ") {
			t.Errorf("kvrflow faults does not list %s:\n%s", p, r.stdout)
		}
	}
	for _, h := range []string{"# restore workflow", "# undo workflow", "# fs:", "# journal:", "step.write.begin = restore.write.begin"} {
		if !strings.Contains(r.stdout, h) {
			t.Errorf("kvrflow faults does not say %q:\n%s", h, r.stdout)
		}
	}
	var doc struct {
		Points []struct {
			Group string `json:"group"`
			Name  string `json:"name"`
			What  string `json:"what"`
		} `json:"points"`
		Aliases  map[string]string `json:"aliases"`
		ExitCode int               `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "faults", "--json"), &doc)
	lines := 0
	for _, l := range strings.Split(r.stdout, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines++
		}
	}
	if len(doc.Points) != lines {
		t.Errorf("--json lists %d points, the text %d", len(doc.Points), lines)
	}
	if doc.Aliases["step.commit.begin"] != "restore.commit.begin" {
		t.Errorf("--json aliases: %v", doc.Aliases)
	}
	for _, p := range doc.Points {
		if p.Name == "" || p.What == "" {
			t.Errorf("point %+v lacks a name or a description", p)
		}
	}
}
