package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// rateUnits are the units --rate-limit accepts, longest first: binary
// (KiB, MiB, GiB: powers of 1024) and decimal (KB, MB, GB: powers of
// 1000), and B for bytes.
var rateUnits = []struct {
	name string
	mult float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// parseRate parses a --rate-limit value: a number, a unit (B, KiB, MiB,
// GiB, KB, MB, GB; K, M and G are KiB, MiB and GiB) and an optional "/s":
// 100MiB/s, 10MB/s, 512KiB/s, 1.5GiB. A plain number is bytes per second;
// "" and 0 mean no limit. It returns bytes per second.
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	t = strings.TrimSuffix(t, "/s")
	mult := 1.0
	for _, u := range rateUnits {
		if strings.HasSuffix(t, u.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.name)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("--rate-limit %q: want a rate such as 100MiB/s, 10MB/s or 512KiB/s", s)
	}
	n := v * mult
	if n > math.MaxInt64/2 {
		return 0, fmt.Errorf("--rate-limit %q: too large", s)
	}
	if n > 0 && n < 1024 {
		return 0, fmt.Errorf("--rate-limit %q: below 1 KiB/s", s)
	}
	return int64(n), nil
}

// remoteMemoryLimit is the Go runtime's soft memory limit while restoring
// from an object store, unless GOMEMLIMIT is set: the transfers stream
// through steps.RemoteFiles buffers of 256 KiB, and the limit makes the
// garbage collector run before the heap (the SDKs' responses, the
// journal, the HTTP connections) doubles, so that with the binary's own
// pages the process stays well under 128 MiB (TestRemote_PeakRSS).
const remoteMemoryLimit = 80 << 20

// limitMemoryForRemote sets remoteMemoryLimit unless the environment set
// GOMEMLIMIT.
func limitMemoryForRemote(getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(remoteMemoryLimit)
	}
}
