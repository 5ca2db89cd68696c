package cluster

import "github.com/kvrflow/kvrflow/steps"

func modeOf(s string) steps.Mode {
	m, _ := steps.ParseMode(s)
	return m
}
