package audit

import (
	"slices"
	"strings"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/steps"
)

// Workflows maps a run's Kind (journal.Run.Kind) to the workflow whose
// state machine its events follow.
type Workflows map[string]*fsm.Definition

// Default returns the workflows kvrflow runs, each under its name, the
// kind its runs are journaled with (steps.Workflows: "restore", "undo").
func Default() Workflows {
	wf := Workflows{}
	for kind, d := range steps.Workflows {
		wf[kind] = d
	}
	return wf
}

// orDefault returns wf, or Default if wf is nil.
func (wf Workflows) orDefault() Workflows {
	if wf == nil {
		return Default()
	}
	return wf
}

// kinds lists the kinds wf knows, sorted, for a message.
func (wf Workflows) kinds() string {
	var ks []string
	for k := range wf {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	if len(ks) == 0 {
		return "none"
	}
	return strings.Join(ks, ", ")
}
