package audit

import (
	"fmt"
	"strings"

	lfsm "github.com/looplab/fsm"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
)

// Graph draws the state machine of def (a workflow, such as a run's
// Workflows[run.Kind]) with looplab/fsm's visualizers, format "dot"
// (Graphviz) or "mermaid", marking the path of evs (the states visited
// and the transitions taken) when given. Another format is an error
// matching ErrFormat.
func Graph(def *fsm.Definition, format string, evs []journal.Event) (string, error) {
	current := def.Start
	visited := map[string]bool{def.Start: true}
	taken := map[string]bool{} // "from\x00event"
	for _, ev := range evs {
		visited[ev.To] = true
		if ev.Event != fsm.NoteEvent {
			taken[ev.From+"\x00"+ev.Event] = true
		}
		current = ev.To
	}
	f := def.NewFSM(current)
	switch format {
	case "dot":
		var b strings.Builder
		for _, line := range strings.Split(lfsm.Visualize(f), "\n") {
			var src, dst, ev string
			if n, _ := fmt.Sscanf(strings.TrimSpace(line), "%q -> %q [ label = %q ];", &src, &dst, &ev); n == 3 && taken[src+"\x00"+ev] {
				line = strings.Replace(line, "];", `color = "blue", penwidth = 2 ];`, 1)
				line = strings.Replace(line, `label = "`+ev+`"`, `label = "`+ev+`", `, 1)
			}
			if line == "}" && len(evs) > 0 {
				for _, s := range def.States() {
					if visited[s] {
						fmt.Fprintf(&b, "    %q [style = filled, fillcolor = \"lightblue\"];\n", s)
					}
				}
			}
			b.WriteString(line)
			b.WriteString("\n")
		}
		return strings.TrimRight(b.String(), "\n") + "\n", nil
	case "mermaid":
		// A state diagram draws "[*] --> S" for the FSM's current state,
		// which Mermaid reads as the start state: draw it from Start, the
		// run's path is marked by class below.
		out, err := lfsm.VisualizeForMermaidWithGraphType(def.NewFSM(def.Start), lfsm.StateDiagram)
		if err != nil {
			return "", err
		}
		if len(evs) > 0 {
			var vs []string
			for _, s := range def.States() {
				if visited[s] {
					vs = append(vs, s)
				}
			}
			out += "    classDef visited fill:#cde4ff,stroke:#2a62c9,stroke-width:2px\n"
			out += "    class " + strings.Join(vs, ",") + " visited\n"
		}
		return out, nil
	}
	return "", fmt.Errorf("%w %q: want dot or mermaid", ErrFormat, format)
}
