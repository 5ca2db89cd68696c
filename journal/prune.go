package journal

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prune removes old runs that have ended: with keep > 0, all but the keep
// newest runs; with before not zero, those that ended before it (a run
// goes if either says so). It removes only a prefix of the journal's runs,
// stopping at the first run that must stay (in flight, or not selected),
// so what remains is one unbroken chain; it records as the journal's
// anchor the hash the remaining chain starts from, so Check still
// verifies it. It is one transaction: a crash leaves all or nothing
// pruned. It returns the ids removed. A run listed in hold stays too (and
// so every run after it): kvrflow holds the runs that own a kept
// database, whose record is its proof of ownership.
func (j *Journal) Prune(keep int, before time.Time, hold ...uint64) ([]uint64, error) {
	if keep <= 0 && before.IsZero() {
		return nil, fmt.Errorf("prune %s: nothing selects runs to remove", j.path)
	}
	var removed []uint64
	err := j.update(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		var all []Run
		if err := runs.ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %d: %w: %w", beUint64(k), ErrCorrupt, err)
			}
			all = append(all, r)
			return nil
		}); err != nil {
			return err
		}
		anchor := ""
		for i, r := range all {
			old := (keep > 0 && i < len(all)-keep) || (!before.IsZero() && !r.End.IsZero() && r.End.Before(before))
			if r.InFlight() || !old || slices.Contains(hold, r.ID) {
				break
			}
			k := itob(r.ID)
			b, err := decodeBegin(k, tx.Bucket(bucketBegins).Get(k))
			if err != nil {
				return err
			}
			for _, del := range []func() error{
				func() error { return runs.Delete(k) },
				func() error { return tx.Bucket(bucketBegins).Delete(k) },
				func() error { return tx.Bucket(bucketEvents).DeleteBucket(k) },
			} {
				if err := del(); err != nil {
					return err
				}
			}
			anchor = b.Hash
			removed = append(removed, r.ID)
		}
		if anchor == "" {
			return nil
		}
		return tx.Bucket(bucketMeta).Put(keyAnchor, []byte(anchor))
	})
	return removed, err
}
