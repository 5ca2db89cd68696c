package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "0": 0, "100MiB/s": 100 << 20, "10MB/s": 10e6, "512KiB/s": 512 << 10, "1.5GiB": 3 << 29,
		"2048": 2048, "64M": 64 << 20, "1GB/s": 1e9, " 8 MiB/s ": 8 << 20,
	} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-1MiB/s", "10XB/s", "100B/s", "MiB/s", "1e400"} {
		if got, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %d, want an error", in, got)
		}
	}
}

// The agent raises the GC target and sets the soft memory limit, unless
// the environment sets GOGC or GOMEMLIMIT.
func TestTuneAgentGC_UnlessTheEnvironmentSetsIt(t *testing.T) {
	gc, lim := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(lim) }()
	tuneAgentGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != agentGCPercent {
		t.Errorf("GC percent %d, want %d", got, agentGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != remoteMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, remoteMemoryLimit)
	}
	env := map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}
	tuneAgentGC(func(k string) string { return env[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent %d, want it left at 100", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: memory limit %d, want it left alone", got)
	}
}
