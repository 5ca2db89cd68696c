package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"

	"github.com/kvrflow/kvrflow/steps"
)

// Plan is a cluster restore: its name and each node's part. It is what
// the coordinator publishes in etcd; an agent takes from it only its
// node's source and mode, never the database path (see AgentOptions).
type Plan struct {
	Name  string     `json:"name"`
	Nodes []PlanNode `json:"nodes"`
}

// PlanNode is one node's part of a Plan. DB, if given, must be the path
// the node's agent was started with (--db): it is checked, never used.
type PlanNode struct {
	ID   string `json:"id"`
	DB   string `json:"db,omitempty"`
	From string `json:"from"`
	Mode string `json:"mode,omitempty"`
}

// validName is what a restore name and a node id may be: they are parts
// of etcd keys.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ParsePlan reads a plan (JSON) and checks it. Any problem is an error
// matching ErrBadPlan, one line.
func ParsePlan(r io.Reader) (*Plan, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPlan, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON document", ErrBadPlan)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Check reports the first problem of p, as an error matching ErrBadPlan.
func (p *Plan) Check() error {
	if !validName.MatchString(p.Name) {
		return fmt.Errorf("%w: name %q: want 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)", ErrBadPlan, p.Name)
	}
	if len(p.Nodes) == 0 {
		return fmt.Errorf("%w: %s: no nodes", ErrBadPlan, p.Name)
	}
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		if !validName.MatchString(n.ID) {
			return fmt.Errorf("%w: node %d: id %q: want 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)", ErrBadPlan, i, n.ID)
		}
		if seen[n.ID] {
			return fmt.Errorf("%w: node %s listed twice", ErrBadPlan, n.ID)
		}
		seen[n.ID] = true
		if n.From == "" {
			return fmt.Errorf("%w: node %s: no source (from)", ErrBadPlan, n.ID)
		}
		switch n.Mode {
		case "", "auto", "copy", "link":
		default:
			return fmt.Errorf("%w: node %s: mode %q: want auto, copy or link", ErrBadPlan, n.ID, n.Mode)
		}
	}
	return nil
}

// Node returns the plan's entry for id.
func (p *Plan) Node(id string) (PlanNode, bool) {
	for _, n := range p.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return PlanNode{}, false
}

// modeOf is a plan's mode as steps knows it ("" if not one).
func modeOf(s string) steps.Mode {
	m, _ := steps.ParseMode(s)
	return m
}
