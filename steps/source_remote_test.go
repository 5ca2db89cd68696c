package steps

import (
	"errors"
	"strings"
	"testing"
)

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{
		"s3://b/p": true, "gs://b": true, "azblob://c/p": true, "file:///tmp/x": true, "http://x/y": true,
		"/backups/x": false, "backups/x": false, "./s3:/x": false, "s3:/x": false, "": false, "C:\\x": false,
	} {
		if got := IsURL(s); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestPickRocksBackup: the one backup without an id; several without one
// refused, naming them; an id that is not there refused, naming those
// that are.
func TestPickRocksBackup(t *testing.T) {
	tests := []struct {
		ids     []uint64
		id      uint64
		want    uint64
		mention string
	}{
		{[]uint64{3}, 0, 3, ""},
		{[]uint64{3}, 3, 3, ""},
		{[]uint64{2, 1}, 2, 2, ""},
		{[]uint64{2, 1}, 0, 0, "2 backups (1, 2); choose one with --backup-id"},
		{[]uint64{2, 1}, 5, 0, "no backup 5; the backups there are 1, 2"},
		{nil, 0, 0, "no backup in meta/"},
		{nil, 4, 0, "no backup 4 (meta/ lists none)"},
	}
	for _, tt := range tests {
		got, err := pickRocksBackup("DIR", tt.ids, tt.id)
		if tt.mention == "" {
			if err != nil || got != tt.want {
				t.Errorf("pickRocksBackup(%v, %d) = %d, %v; want %d", tt.ids, tt.id, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "DIR: "+tt.mention) {
			t.Errorf("pickRocksBackup(%v, %d) = %d, %v; want ErrBadSource naming %q", tt.ids, tt.id, got, err, tt.mention)
		}
	}
}
