package journal_test

import (
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/journal"
)

func TestScratchTruncate(t *testing.T) {
	for _, n := range []int{5, 40, 400} {
		path := validJournal(t, n)
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var hw int64
		db.View(func(tx *bolt.Tx) error { hw = tx.Size(); return nil })
		db.Close()
		fi, _ := os.Stat(path)
		t.Logf("runs %d file %d hw %d", n, fi.Size(), hw)
		os.Truncate(path, hw/2)
		j, err := journal.Open(path, journal.Options{ReadOnly: true})
		t.Logf("open: %v", err)
		if err == nil {
			rs, err := j.Runs(0)
			t.Logf("runs: %d %v", len(rs), err)
			for _, r := range rs {
				if _, err := j.Events(r.ID); err != nil {
					t.Logf("events %d: %v", r.ID, err)
					break
				}
			}
			j.Close()
		}
	}
}
