package main

import (
	"strings"
	"testing"
)

func TestFaults_ListsThePointsOfEveryPackage(t *testing.T) {
	r := mustRun(t, exitOK, nil, "faults")
	for _, p := range []string{"fs.before-rename", "fs.write", "journal.after-commit", "step.commit.begin", "step.finish.begin"} {
		if !strings.Contains(r.stdout, p+" ") {
			t.Errorf("kvrflow faults does not list %s:\n%s", p, r.stdout)
		}
	}
	var doc struct {
		Points []struct {
			Name string `json:"name"`
			What string `json:"what"`
		} `json:"points"`
		ExitCode int `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "faults", "--json"), &doc)
	if len(doc.Points) != strings.Count(r.stdout, "\n") {
		t.Errorf("--json lists %d points, the text %d lines", len(doc.Points), strings.Count(r.stdout, "\n"))
	}
	for _, p := range doc.Points {
		if p.Name == "" || p.What == "" {
			t.Errorf("point %+v lacks a name or a description", p)
		}
	}
}
