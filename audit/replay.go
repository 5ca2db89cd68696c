package audit

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
)

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
	// very function recovery calls ("ask the decider" in a cluster node's
	// prepared state; roll back there for any other run).
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

// unknownDecision stands for recovery's decision in a run whose workflow
// is not known (Report shows such runs all the same).
const unknownDecision = "unknown workflow"

// Replay rebuilds run id of the journal at path (read-only), with the
// decisions of its workflow, wf[run.Kind] (Default if wf is nil). A run
// of a kind wf lacks is an error matching ErrUnknownKind; a run the
// journal does not hold, journal.ErrNotFound.
func Replay(path string, id uint64, wf Workflows) (*Timeline, error) {
	wf = wf.orDefault()
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	r, err := j.Run(id)
	if err != nil {
		return nil, err
	}
	def := wf[r.Kind]
	if def == nil {
		return nil, fmt.Errorf("%s: run %d of kind %q: %w (known: %s)", path, id, r.Kind, ErrUnknownKind, wf.kinds())
	}
	evs, err := j.Events(id)
	if err != nil {
		return nil, err
	}
	return timeline(def, r, evs), nil
}

// timeline rebuilds run r from its events with def's decisions (or
// unknownDecision if def is nil).
func timeline(def *fsm.Definition, r journal.Run, evs []journal.Event) *Timeline {
	// A restore run that is no cluster node's (no prepare tag in its
	// precheck details) is rolled back from prepared without asking: see
	// steps.PreparedDecider.
	clusterRun := false
	for _, ev := range evs {
		var d struct {
			Prepare string `json:"prepare"`
		}
		if ev.Event != fsm.NoteEvent && json.Unmarshal(ev.Details, &d) == nil && d.Prepare != "" {
			clusterRun = true
		}
	}
	decide := func(state string) string {
		if def == nil {
			return unknownDecision
		}
		dec := def.Decide(state)
		if dec == fsm.Ask && !clusterRun {
			dec = fsm.RollBack
		}
		return dec.String()
	}
	start := ""
	if def != nil {
		start = def.Start
	}
	tl := &Timeline{Run: r, IfCrashedAtStart: decide(start), Steps: make([]TimelineStep, 0, len(evs))}
	last := r.Start
	for _, ev := range evs {
		st := TimelineStep{Seq: ev.Seq, Time: ev.Time, Duration: ev.Time.Sub(last), From: ev.From, Event: ev.Event, To: ev.To,
			Details: ev.Details, Hash: ev.Hash, IfCrashed: decide(ev.To)}
		st.Files, st.Bytes, st.Error = summarize(ev.Details)
		tl.Steps = append(tl.Steps, st)
		last = ev.Time
	}
	return tl
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
