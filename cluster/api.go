package cluster

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/fault"
)

// Outcome is how a cluster restore ended, as the coordinator reports it.
type Outcome string

// Outcomes of Coordinate.
const (
	Committed Outcome = "committed"
	Aborted   Outcome = "aborted"
	Undecided Outcome = "undecided"
	// Mixed: a node reports an outcome that contradicts the decision
	// (an operator's override that disagreed with etcd, say).
	Mixed Outcome = "mixed"
)

// CoordinateOptions configure Coordinate.
type CoordinateOptions struct {
	// PrepareTimeout is how long after an agent sees the attempt any
	// participant may decide abort if not every node has voted; default
	// DefaultPrepareTimeout. It is published with the attempt.
	PrepareTimeout time.Duration
	// Wait bounds how long Coordinate waits for the decision and every
	// node's outcome; default PrepareTimeout plus one minute.
	Wait time.Duration
	// NewAttempt publishes a new attempt even when the current attempt
	// of this name has the same plan (by default Coordinate then follows
	// that attempt instead of restoring twice).
	NewAttempt bool
	// Faults, if set, fires the coordinator's fault points (tests).
	Faults *fault.Set
	Log    zerolog.Logger
}

// DefaultPrepareTimeout is CoordinateOptions.PrepareTimeout's default.
const DefaultPrepareTimeout = 10 * time.Minute

// Report is the state of one attempt of a cluster restore.
type Report struct {
	Name     string       `json:"name"`
	Attempt  int64        `json:"attempt"`
	Decision string       `json:"decision"` // "commit", "abort" or "" (none yet)
	Reason   string       `json:"reason,omitempty"`
	Outcome  Outcome      `json:"outcome"`
	Nodes    []NodeReport `json:"nodes"`
}

// NodeReport is one node's part of a Report.
type NodeReport struct {
	ID      string `json:"id"`
	Vote    string `json:"vote"`              // "prepared", "abort" or ""
	Reason  string `json:"reason,omitempty"`  // why it voted abort
	Outcome string `json:"outcome,omitempty"` // "committed", "rolled_back" or ""
}

// AgentOptions configure Agent.
type AgentOptions struct {
	// Node is this node's id in plans.
	Node string
	// DB is this node's database directory: the only one the agent
	// restores into. A plan's db for the node, if given, must be it.
	DB string
	// AllowFrom, if not empty, lists the prefixes a plan's source for
	// this node must start with.
	AllowFrom []string
	// Once handles the current restore (or waits for the next), then
	// returns this node's outcome.
	Once bool
	// Journal is the journal file (default DB.kvrflow/journal.db).
	Journal string
	// Restore is the template of each restore: DB, Journal, Log and the
	// like; Source and Mode come from the plan.
	Restore kvrflow.Options
	Log     zerolog.Logger
}

// RequestTimeout bounds each etcd request of an agent and a coordinator
// (not their waits for votes and decisions): etcd not answering within
// it is etcd unreachable.
var RequestTimeout = 5 * time.Second
