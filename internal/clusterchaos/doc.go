// Package clusterchaos is the harness of `kvrflow chaos --cluster N`
// and of the end-to-end kill tests of the cluster restore: in a scratch
// directory it makes N nodes, each with an old database and its own
// backup, and in each Iteration resets every node's database, starts one
// `kvrflow cluster agent --once` child process per node and a `kvrflow
// cluster restore` coordinator, kills (SIGKILL) one of them at a random
// moment — an agent, sometimes twice (again during its recovery), or the
// coordinator — restarts what it killed, waits for every node's outcome,
// and checks the invariant against etcd's decision: every node holds the
// old database or every node the new one, byte for byte, and the new one
// exactly when etcd's decision is commit; every node's journal has
// nothing in flight. Summary counts the iterations (all-old, all-new,
// mixed, which must be 0).
//
// # Crash safety
//
// The harness writes only below its scratch directory, in the entries it
// makes there (nodes, pristine, backups, plans); etcd is reached only
// through the kvrflow children, with the etcd flags given in
// Config.EtcdArgs, under restore names of its own (chaos-SEED-N).
//
// # Caveats
//
// Kills happen at a random moment below the duration of a clean cluster
// restore measured by New, so they are not repeatable: the same seed picks
// the same victims and delays, not the same instants of the protocol. A
// coordinator killed before it published the plan is run again with the
// same plan; one killed later is not needed: the agents decide without it
// (whoever sees the last vote writes the decision).
package clusterchaos
