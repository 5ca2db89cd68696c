package steps

import (
	"context"
	"errors"
	"testing"
)

// TestIsSSTableMagic: the tails of real tables (Pebble's, RocksDB's
// block-based and LevelDB's, as the engines write them) are recognised;
// zeros, text and a short tail are not.
func TestIsSSTableMagic(t *testing.T) {
	for _, tc := range []struct {
		tail string
		want bool
	}{
		{"\xf0\x9f\xaa\xb3\xf0\x9f\xaa\xb3", true}, // Pebble (sstable/table.go)
		{"\xf7\xcf\xf4\x85\xb7\x41\xe2\x88", true}, // RocksDB block-based
		{"\x57\xfb\x80\x8b\x24\x75\x47\xdb", true}, // LevelDB
		{"\x64\x95\xbf\x63\x96\x22\x42\x82", true}, // RocksDB plain table
		{"\x00\x00\x00\x00\x00\x00\x00\x00", false},
		{"MANIFEST", false},
		{"\xf0\x9f\xaa\xb3", false},
	} {
		if got := isSSTableMagic([]byte(tc.tail)); got != tc.want {
			t.Errorf("isSSTableMagic(%q) = %v, want %v", tc.tail, got, tc.want)
		}
	}
}

// TestPrecheck_RefusesUnknownOptions: a caller of the steps that bypasses
// kvrflow.Restore still cannot run with a level or mode kvrflow does not
// know (it would otherwise fall back to something it did not ask for).
func TestPrecheck_RefusesUnknownOptions(t *testing.T) {
	for _, e := range []*Env{{Verify: "fast"}, {Mode: "move"}} {
		if _, err := e.precheck(context.Background(), nil); !errors.Is(err, ErrBadOption) {
			t.Errorf("precheck with %+v: %v, want ErrBadOption", e, err)
		}
	}
}
