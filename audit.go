package kvrflow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	lfsm "github.com/looplab/fsm"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// VerifyReport is what VerifyJournal found.
type VerifyReport struct {
	Journal  string            `json:"journal"`
	Runs     int               `json:"runs"`
	Events   int               `json:"events"`
	InFlight []uint64          `json:"in_flight"`
	Problems []journal.Problem `json:"problems"`
}

// OK reports whether the journal verified without a problem.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// VerifyJournal checks the journal at path, read-only: every hash chain
// (journal.Check), then a replay of each run's events through the restore
// workflow's FSM, the one the engine uses: every transition legal from the
// state the run was in, the first from the start state, and every ended
// run in the terminal state of its outcome. Runs in flight are listed, not
// faulted. Problems come in run and sequence order: the first is the first
// bad record.
func VerifyJournal(path string) (*VerifyReport, error) {
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	rep := &VerifyReport{Journal: path, InFlight: []uint64{}, Problems: []journal.Problem{}}
	probs, err := j.Check()
	if err != nil {
		return nil, err
	}
	bad := map[uint64]bool{}
	for _, p := range probs {
		bad[p.Run] = true
	}
	rep.Problems = append(rep.Problems, probs...)
	runs, err := j.Runs(0)
	if err != nil {
		// A run record is unreadable: Check named it; nothing to replay.
		rep.Problems = append(rep.Problems, journal.Problem{What: "runs unreadable: " + err.Error()})
		return rep, nil
	}
	rep.Runs = len(runs)
	for _, r := range runs {
		if r.InFlight() {
			rep.InFlight = append(rep.InFlight, r.ID)
		}
		if bad[r.ID] {
			continue // its chain is broken: replaying it proves nothing more
		}
		evs, err := j.Events(r.ID)
		if err != nil {
			rep.Problems = append(rep.Problems, journal.Problem{Run: r.ID, What: err.Error()})
			continue
		}
		rep.Events += len(evs)
		def, ok := steps.Workflows[r.Kind]
		if !ok {
			rep.Problems = append(rep.Problems, journal.Problem{Run: r.ID, What: fmt.Sprintf("run of unknown kind %q", r.Kind)})
			continue
		}
		if p := replayRun(def, r, evs); p != nil {
			rep.Problems = append(rep.Problems, *p)
		}
	}
	sortProblems(rep.Problems)
	return rep, nil
}

// replayRun moves a looplab FSM of def through the run's events and
// returns the first illegal one.
func replayRun(def *fsm.Definition, r journal.Run, evs []journal.Event) *journal.Problem {
	f := def.NewFSM(def.Start)
	for _, ev := range evs {
		bad := func(format string, args ...any) *journal.Problem {
			return &journal.Problem{Run: r.ID, Seq: ev.Seq, What: fmt.Sprintf(format, args...)}
		}
		state := f.Current()
		if ev.From != state {
			return bad("starts from %q, but the run is in %q", ev.From, state)
		}
		if ev.Event == fsm.NoteEvent {
			if ev.To != state {
				return bad("a note must stay in %q, it leads to %q", state, ev.To)
			}
			continue
		}
		if to, ok := def.Dest(state, ev.Event); !ok || to != ev.To {
			return bad("%s -%s-> %s is not a transition of the %s workflow", ev.From, ev.Event, ev.To, def.Name)
		}
		if err := f.Event(context.Background(), ev.Event); err != nil {
			return bad("the FSM refuses %s from %s: %v", ev.Event, state, err)
		}
	}
	outcome, terminal := def.IsTerminal(f.Current())
	switch {
	case f.Current() != r.State:
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("the events lead to %q, the run record says %q", f.Current(), r.State)}
	case r.InFlight() && terminal:
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("in terminal state %q but recorded as in flight", f.Current())}
	case !r.InFlight() && (!terminal || outcome != r.Outcome):
		return &journal.Problem{Run: r.ID, What: fmt.Sprintf("recorded outcome %q, but its events end in %q", r.Outcome, f.Current())}
	}
	return nil
}

func sortProblems(ps []journal.Problem) {
	for i := 1; i < len(ps); i++ {
		for k := i; k > 0 && (ps[k].Run < ps[k-1].Run || ps[k].Run == ps[k-1].Run && ps[k].Seq < ps[k-1].Seq); k-- {
			ps[k], ps[k-1] = ps[k-1], ps[k]
		}
	}
}

// TimelineStep is one record of a run as Replay shows it.
type TimelineStep struct {
	Seq      uint64          `json:"seq"`
	Time     time.Time       `json:"time"`
	Duration time.Duration   `json:"duration_ns"` // since the previous record
	From     string          `json:"from"`
	Event    string          `json:"event"`
	To       string          `json:"to"`
	Files    int             `json:"files,omitempty"`
	Bytes    int64           `json:"bytes,omitempty"`
	Error    string          `json:"error,omitempty"`
	Details  json.RawMessage `json:"details,omitempty"`
	Hash     string          `json:"hash"`
	// IfCrashed is what recovery does had the process died right after
	// this record: fsm.Definition.Decide of the state it leads to, the
	// very function recovery calls.
	IfCrashed string `json:"if_crashed"`
}

// Timeline is a run rebuilt step by step from the journal.
type Timeline struct {
	Run journal.Run `json:"run"`
	// IfCrashedAtStart is recovery's decision had the process died after
	// the run began and before its first event.
	IfCrashedAtStart string         `json:"if_crashed_at_start"`
	Steps            []TimelineStep `json:"steps"`
}

// Replay rebuilds run id of the journal at path (read-only).
func Replay(path string, id uint64) (*Timeline, error) {
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	r, err := j.Run(id)
	if err != nil {
		return nil, err
	}
	evs, err := j.Events(id)
	if err != nil {
		return nil, err
	}
	def, ok := steps.Workflows[r.Kind]
	if !ok {
		def = steps.Restore
	}
	tl := &Timeline{Run: r, IfCrashedAtStart: def.Decide(def.Start).String(), Steps: []TimelineStep{}}
	last := r.Start
	for _, ev := range evs {
		st := TimelineStep{Seq: ev.Seq, Time: ev.Time, Duration: ev.Time.Sub(last), From: ev.From, Event: ev.Event, To: ev.To,
			Details: ev.Details, Hash: ev.Hash, IfCrashed: def.Decide(ev.To).String()}
		st.Files, st.Bytes, st.Error = summarize(ev.Details)
		tl.Steps = append(tl.Steps, st)
		last = ev.Time
	}
	return tl, nil
}

// summarize pulls the file count, byte count and error out of a step's
// details, whatever the step.
func summarize(details json.RawMessage) (files int, bytes int64, errText string) {
	var d map[string]json.RawMessage
	if json.Unmarshal(details, &d) != nil {
		return 0, 0, ""
	}
	if v, ok := d["files"]; ok {
		var n int
		var list []json.RawMessage
		if json.Unmarshal(v, &n) == nil {
			files = n
		} else if json.Unmarshal(v, &list) == nil {
			files = len(list)
		}
	}
	_ = json.Unmarshal(d["bytes"], &bytes)
	_ = json.Unmarshal(d["error"], &errText)
	if inner, ok := d["details"]; ok && files == 0 && bytes == 0 {
		files, bytes, _ = summarize(inner)
	}
	return files, bytes, errText
}

// Graph draws the restore state machine with looplab/fsm's visualizers,
// format "dot" (Graphviz) or "mermaid", marking the path of evs (the
// states visited and the transitions taken) when given.
func Graph(format string, evs []journal.Event) (string, error) {
	def := steps.Restore
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
	return "", fmt.Errorf("unknown graph format %q: want dot or mermaid", format)
}
