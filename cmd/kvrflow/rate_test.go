package main

import "testing"

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
