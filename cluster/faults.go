package cluster

import "github.com/kvrflow/kvrflow/internal/fault"

// Fault points of the protocol (see kvrflow faults), beside the restore
// workflow's own (restore.prepared.begin, ...).
var (
	PointBeforeVote    = fault.Register("cluster.agent.before-vote", "cluster agent: run prepared, its vote not yet written")
	PointAfterVote     = fault.Register("cluster.agent.after-vote", "cluster agent: vote prepared written, the decision not yet read")
	PointDecided       = fault.Register("cluster.agent.decided", "cluster agent: decision read, not yet applied to the run")
	PointBeforeOutcome = fault.Register("cluster.agent.before-outcome", "cluster agent: decision applied, the node's outcome not yet written")
	PointPublished     = fault.Register("cluster.coordinator.published", "cluster coordinator: attempt published, not yet waiting")
	PointCoordDecided  = fault.Register("cluster.coordinator.decided", "cluster coordinator: decision seen, outcomes not yet read")
)
