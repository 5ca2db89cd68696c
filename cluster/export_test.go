package cluster

// WatchDecisionOnly makes every plan's agents watch only the decision key
// (as agents of a plan of more than smallPlan nodes do), until the
// returned function is called.
func WatchDecisionOnly() (restore func()) {
	old := smallPlan
	smallPlan = 0
	return func() { smallPlan = old }
}
