package journal

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Begin records a new run, in flight, and returns it with its id and
// start time set. State is the run's initial state.
func (j *Journal) Begin(r Run) (Run, error) {
	err := j.update(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		id, err := runs.NextSequence()
		if err != nil {
			return err
		}
		r.ID, r.Start, r.Events = id, time.Now().UTC(), 0
		r.End, r.Outcome = time.Time{}, ""
		r.PrevRun = head(tx)
		value, hash, err := seal(beginOf(&r))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketBegins).Put(itob(id), value); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyHead, []byte(hash)); err != nil {
			return err
		}
		r.FirstHash, r.FinalHash = hash, hash
		if _, err := tx.Bucket(bucketEvents).CreateBucket(itob(id)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketInFlight).Put(itob(id), []byte(r.Target)); err != nil {
			return err
		}
		return putRun(runs, &r)
	})
	return r, err
}

func putRun(runs *bolt.Bucket, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return runs.Put(itob(r.ID), b)
}

func getRun(tx *bolt.Tx, id uint64) (Run, error) {
	v := tx.Bucket(bucketRuns).Get(itob(id))
	if v == nil {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return decodeRun(itob(id), v)
}

// Append durably records the transition from → to by event for run id,
// with details encoded as JSON. A non-empty outcome ends the run: its end
// time and outcome are set and it leaves the in-flight index. errText, if
// not empty, is kept as the run's last error. Append fails with
// ErrConflict, changing nothing, if from is not the run's current state.
func (j *Journal) Append(id uint64, from, event, to string, details any, outcome, errText string) error {
	var ev Event
	raw, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("encode details of run %d: %w", id, err)
	}
	if details == nil {
		raw = nil
	}
	return j.update(func(tx *bolt.Tx) error {
		r, err := getRun(tx, id)
		if err != nil {
			return err
		}
		if !r.InFlight() || r.State != from {
			return fmt.Errorf("run %d in state %q (outcome %q): %s -%s-> %s: %w", id, r.State, r.Outcome, from, event, to, ErrConflict)
		}
		prev, last, err := lastEventHash(tx, id)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		if now.Before(last) {
			now = last // keep time non-decreasing across clock steps
		}
		ev = Event{Run: id, Seq: r.Events + 1, From: from, Event: event, To: to, Time: now, Details: raw, Prev: prev}
		value, hash, err := seal(ev)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketEvents).Bucket(itob(id)).Put(itob(ev.Seq), value); err != nil {
			return err
		}
		r.Events, r.State, r.FinalHash = ev.Seq, to, hash
		if errText != "" {
			r.Error = errText
		}
		if outcome != "" {
			r.Outcome, r.End = outcome, now
			if err := tx.Bucket(bucketInFlight).Delete(itob(id)); err != nil {
				return err
			}
		}
		return putRun(tx.Bucket(bucketRuns), &r)
	})
}

// Run returns run id.
func (j *Journal) Run(id uint64) (Run, error) {
	var r Run
	err := j.view(func(tx *bolt.Tx) error {
		var err error
		r, err = getRun(tx, id)
		return err
	})
	return r, err
}

// Events returns the events of run id in sequence order.
func (j *Journal) Events(id uint64) ([]Event, error) {
	var out []Event
	err := j.view(func(tx *bolt.Tx) error {
		if _, err := getRun(tx, id); err != nil {
			return err
		}
		b := tx.Bucket(bucketEvents).Bucket(itob(id))
		if b == nil {
			return fmt.Errorf("run %d: %w: no events bucket", id, ErrCorrupt)
		}
		return b.ForEach(func(k, v []byte) error {
			ev, err := decodeEvent(id, k, v)
			if err != nil {
				return err
			}
			if want := uint64(len(out) + 1); ev.Seq != want {
				return fmt.Errorf("run %d: %w: event %d where %d was due", id, ErrCorrupt, ev.Seq, want)
			}
			out = append(out, ev)
			return nil
		})
	})
	return out, err
}

// Runs returns the last n runs (all if n <= 0), oldest first.
func (j *Journal) Runs(n int) ([]Run, error) {
	var out []Run
	err := j.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Last(); k != nil && (n <= 0 || len(out) < n); k, v = c.Prev() {
			r, err := decodeRun(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	for i, k := 0, len(out)-1; i < k; i, k = i+1, k-1 {
		out[i], out[k] = out[k], out[i]
	}
	return out, err
}

// InFlight returns the runs for target (every target if empty) that have
// not ended, oldest first. It reads the in-flight index, not every run.
func (j *Journal) InFlight(target string) ([]Run, error) {
	var out []Run
	err := j.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInFlight).ForEach(func(k, v []byte) error {
			if target != "" && string(v) != target {
				return nil
			}
			r, err := getRun(tx, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// decodeRun parses a stored run record and checks it against its key.
func decodeRun(k, v []byte) (Run, error) {
	var r Run
	if len(k) != 8 {
		return r, fmt.Errorf("%w: run key of %d bytes", ErrCorrupt, len(k))
	}
	id := binary.BigEndian.Uint64(k)
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("run %d: %w: %w", id, ErrCorrupt, err)
	}
	switch {
	case r.ID != id:
		return r, fmt.Errorf("run %d: %w: record says run %d", id, ErrCorrupt, r.ID)
	case r.State == "" || r.Target == "":
		return r, fmt.Errorf("run %d: %w: no state or target", id, ErrCorrupt)
	}
	return r, nil
}

// decodeEvent parses a stored event of run id and checks it against its
// key.
func decodeEvent(id uint64, k, v []byte) (Event, error) {
	var ev Event
	if len(k) != 8 {
		return ev, fmt.Errorf("run %d: %w: event key of %d bytes", id, ErrCorrupt, len(k))
	}
	seq := binary.BigEndian.Uint64(k)
	canonical, hash, err := unseal(v)
	if err != nil {
		return ev, fmt.Errorf("run %d event %d: %w: %w", id, seq, ErrCorrupt, err)
	}
	if err := json.Unmarshal(canonical, &ev); err != nil {
		return ev, fmt.Errorf("run %d event %d: %w: %w", id, seq, ErrCorrupt, err)
	}
	ev.Hash = hash
	switch {
	case ev.Seq != seq || ev.Run != id:
		return ev, fmt.Errorf("run %d event %d: %w: record says run %d event %d", id, seq, ErrCorrupt, ev.Run, ev.Seq)
	case ev.From == "" || ev.Event == "" || ev.To == "":
		return ev, fmt.Errorf("run %d event %d: %w: no from, event or to", id, seq, ErrCorrupt)
	}
	return ev, nil
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
