package journal

import (
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// migrate upgrades a journal of schema from to SchemaVersion inside tx, so
// the upgrade is atomic: a crash leaves the old journal or the new one.
//
// Schema 1 stored runs and events as plain JSON, with no hash chain.
// Schema 2 adds the begins bucket and seals every record with its SHA-256,
// chaining each run's events and the runs (see chain.go). Migrating
// rebuilds the chain over the records as they are: it vouches for nothing
// written before it, only makes later changes detectable.
func migrate(tx *bolt.Tx, from int) error {
	if from != 1 {
		return fmt.Errorf("%w: no migration from schema %d", ErrCorrupt, from)
	}
	begins, err := tx.CreateBucketIfNotExists(bucketBegins)
	if err != nil {
		return err
	}
	runs, events := tx.Bucket(bucketRuns), tx.Bucket(bucketEvents)
	if runs == nil || events == nil {
		return fmt.Errorf("%w: schema 1 journal without runs or events", ErrCorrupt)
	}
	type kv struct{ k, v []byte }
	var all []kv
	if err := runs.ForEach(func(k, v []byte) error {
		all = append(all, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	}); err != nil {
		return err
	}
	prevRun := Genesis
	for _, rk := range all {
		var r Run
		if err := json.Unmarshal(rk.v, &r); err != nil || r.ID != beUint64(rk.k) {
			return fmt.Errorf("%w: schema 1 run %x: %v", ErrCorrupt, rk.k, err)
		}
		r.PrevRun = prevRun
		value, hash, err := seal(beginOf(&r))
		if err != nil {
			return err
		}
		if err := begins.Put(rk.k, value); err != nil {
			return err
		}
		r.FirstHash, r.FinalHash = hash, hash
		eb := events.Bucket(rk.k)
		if eb == nil {
			return fmt.Errorf("%w: schema 1 run %d has no events bucket", ErrCorrupt, r.ID)
		}
		var evs []kv
		if err := eb.ForEach(func(k, v []byte) error {
			evs = append(evs, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range evs {
			var ev Event
			if err := json.Unmarshal(e.v, &ev); err != nil {
				return fmt.Errorf("%w: schema 1 run %d event %x: %v", ErrCorrupt, r.ID, e.k, err)
			}
			ev.Prev = r.FinalHash
			value, h, err := seal(ev)
			if err != nil {
				return err
			}
			if err := eb.Put(e.k, value); err != nil {
				return err
			}
			r.FinalHash = h
		}
		if err := putRun(runs, &r); err != nil {
			return err
		}
		prevRun = hash
	}
	meta := tx.Bucket(bucketMeta)
	if len(all) > 0 {
		if err := meta.Put(keyHead, []byte(prevRun)); err != nil {
			return err
		}
	}
	return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
}
