// Package cluster restores many kvrflow nodes all-or-nothing: two-phase
// commit with etcd as the durable decision log (issue 14).
//
// Each node's agent runs its restore up to the prepared state (the new
// database staged, verified and durable; the journal says so; the
// database locks held), then votes in etcd. The decision, commit or
// abort, is written exactly once by an etcd transaction; each agent then
// commits or rolls back its run and records its outcome. DESIGN.md,
// "Cluster restore", has the keys, transactions and crash table.
//
// # Crash safety
//
// A decision is written only by a Txn comparing that none exists
// (CreateRevision == 0), and commit also compares every node's vote of
// this attempt to "prepared" in the same Txn. A node votes prepared only
// after its run is durably prepared, and only while its attempt is the
// restore's current one (a compare on the attempt key): a stale agent
// cannot vote in a later attempt. A node applies a decision only as etcd
// returns it; a node that cannot reach etcd leaves its run prepared
// (ErrUndecided, exit 5), never guessing.
//
// # Caveats
//
// Leases are not used; wall-clock timeouts only ever lead to abort, which
// is safe before a decision: no correctness depends on them. The database
// path is the agent's own (AgentOptions.DB), never read from etcd.
//
// The commit Txn compares every node's vote: etcd refuses a Txn of more
// than --max-txn-ops (default 128) compares, so a plan of more than 126
// nodes needs that etcd option raised (without it such a restore is
// decided abort once every node voted, the reason naming the option). A waiting agent watches only its
// attempt's decision key, the coordinator the whole attempt: 2N + 1 watch
// events and 4N + 4 requests per restore of N nodes (DESIGN.md, Cost at
// scale). An etcd restored from a snapshot older than a decision is
// etcd lost, not etcd back: see DESIGN.md before running agents on it.
package cluster
