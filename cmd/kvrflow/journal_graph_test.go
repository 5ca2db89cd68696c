package main

import (
	"strings"
	"testing"
)

func TestJournalGraph_BareMachineAndARunsPath(t *testing.T) {
	bare := mustRun(t, exitOK, nil, "journal", "graph")
	if !strings.HasPrefix(bare.stdout, "stateDiagram-v2\n    [*] --> new\n") || strings.Contains(bare.stdout, "class") {
		t.Errorf("journal graph (no run):\n%s", bare.stdout)
	}
	if dot := mustRun(t, exitOK, nil, "journal", "graph", "--format", "dot"); !strings.HasPrefix(dot.stdout, "digraph fsm {") || strings.Contains(dot.stdout, "blue") {
		t.Errorf("journal graph --format dot (no run):\n%s", dot.stdout)
	}

	f, _ := restored(t, 1)
	dot := mustRun(t, exitOK, nil, "journal", "graph", "1", "--format", "dot", "--db", f.db)
	for _, want := range []string{`"commit" -> "finish" [ label = "committed", `, `"finish" [style = filled`} {
		if !strings.Contains(dot.stdout, want) {
			t.Errorf("journal graph 1 --format dot lacks %q:\n%s", want, dot.stdout)
		}
	}
	if strings.Contains(dot.stdout, `"rollback" [style = filled`) || strings.Count(dot.stdout, `color = "blue"`) != 8 {
		t.Errorf("journal graph 1 --format dot marks more than the run's 8 transitions:\n%s", dot.stdout)
	}
	m := mustRun(t, exitOK, nil, "journal", "graph", "1", "--db", f.db)
	if !strings.Contains(m.stdout, "    class clean,commit,done,finish,new,precheck,prepared,verify,write visited\n") {
		t.Errorf("journal graph 1:\n%s", m.stdout)
	}
	var doc struct {
		Format   string `json:"format"`
		Run      uint64 `json:"run"`
		Graph    string `json:"graph"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "journal", "graph", "1", "--db", f.db, "--json"), &doc)
	if doc.Format != "mermaid" || doc.Run != 1 || doc.Graph != m.stdout {
		t.Errorf("journal graph --json = %+v", doc)
	}

	for _, args := range [][]string{
		{"journal", "graph", "--format", "svg"},
		{"journal", "graph", "1"}, // a run needs a journal
		{"journal", "graph", "9", "--db", f.db},
		{"journal", "graph", "1", "2", "--db", f.db},
	} {
		mustRun(t, exitUsage, nil, args...)
	}
}
