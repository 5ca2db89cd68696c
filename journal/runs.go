package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
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

// getRun reads run id's record. A run the journal has no trace of is
// ErrNotFound; one with a begin record, events or an in-flight index entry
// but no run record is ErrCorrupt: the journal contradicts itself.
func getRun(tx *bolt.Tx, id uint64) (Run, error) {
	k := itob(id)
	v := tx.Bucket(bucketRuns).Get(k)
	if v == nil {
		var traces []string
		if tx.Bucket(bucketBegins).Get(k) != nil {
			traces = append(traces, "a begin record")
		}
		if tx.Bucket(bucketEvents).Bucket(k) != nil {
			traces = append(traces, "an events bucket")
		}
		if tx.Bucket(bucketInFlight).Get(k) != nil {
			traces = append(traces, "an in-flight index entry")
		}
		if len(traces) > 0 {
			return Run{}, fmt.Errorf("run %d: %w: it has %s but no run record", id, ErrCorrupt, strings.Join(traces, ", "))
		}
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return decodeRun(k, v)
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
		var err error
		out, err = runEvents(tx, id)
		return err
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
// not ended, oldest first. Recovery acts on what it returns, so it first
// checks the in-flight index against the run records, for every target:
// a run whose record has no outcome but is missing from the index, an
// index entry with no run record, or one for a run whose record says it
// ended, is an error matching ErrCorrupt that names the run. It decodes
// only the records the index lists or that carry no outcome: for ended
// runs it reads the record's bytes, not its JSON (see recordEnded).
func (j *Journal) InFlight(target string) ([]Run, error) {
	var out []Run
	err := j.view(func(tx *bolt.Tx) error {
		if err := checkInFlightIndex(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketInFlight).ForEach(func(k, v []byte) error {
			if target != "" && string(v) != target {
				return nil
			}
			r, err := getRun(tx, beUint64(k))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// checkInFlightIndex returns an ErrCorrupt error naming the first run on
// which the in-flight index and the run records disagree. It walks both
// buckets side by side (their keys are the same 8-byte run ids), so it
// seeks nothing.
func checkInFlightIndex(tx *bolt.Tx) error {
	ic := tx.Bucket(bucketInFlight).Cursor()
	ik, _ := ic.First()
	orphan := func(k []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: in-flight index key of %d bytes", ErrCorrupt, len(k))
		}
		return fmt.Errorf("%w: run %d is in the in-flight index but has no run record", ErrCorrupt, beUint64(k))
	}
	c := tx.Bucket(bucketRuns).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if ik != nil && bytes.Compare(ik, k) < 0 {
			return orphan(ik)
		}
		indexed := ik != nil && bytes.Equal(ik, k)
		if indexed {
			ik, _ = ic.Next()
		} else if recordEnded(v) {
			continue // the common case: an ended run, rightly not indexed
		}
		r, err := decodeRun(k, v)
		if err != nil {
			return err
		}
		switch {
		case r.InFlight() && !indexed:
			return fmt.Errorf("%w: run %d is in flight by its record (state %q) but missing from the in-flight index", ErrCorrupt, r.ID, r.State)
		case !r.InFlight() && indexed:
			return fmt.Errorf("%w: run %d ended by its record (outcome %q) but is still in the in-flight index", ErrCorrupt, r.ID, r.Outcome)
		}
	}
	if ik != nil {
		return orphan(ik)
	}
	return nil
}

// outcomeKey begins the outcome field of a run record as encoding/json
// writes it: the field is left out while the run is in flight.
var outcomeKey = []byte(`"outcome":"`)

// recordEnded reports, without decoding it, whether the stored run record
// v carries a non-empty outcome. In JSON a quote inside a string is
// escaped, so these bytes can only be the key of a field, and a run record
// has no nested objects: the answer is exact for any record Run encodes.
// A damaged record may fool it; Check and Runs decode every record.
func recordEnded(v []byte) bool {
	i := bytes.Index(v, outcomeKey)
	return i >= 0 && i+len(outcomeKey) < len(v) && v[i+len(outcomeKey)] != '"'
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
	var ok bool
	if ev, ok = decodeCanonicalEvent(canonical); !ok {
		ev = Event{}
		if err := json.Unmarshal(canonical, &ev); err != nil {
			return ev, fmt.Errorf("run %d event %d: %w: %w", id, seq, ErrCorrupt, err)
		}
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

// AllEvents, as Scan's events, reads the events of every run.
func AllEvents(*Run) bool { return true }

// Scan calls fn with each run whose id is first or more, in id order, and,
// if events is not nil and says so of the run, the run's events in
// sequence order (nil otherwise), all read in one read transaction, one
// run at a time: what Scan holds is one run's events, however many runs
// the journal has, and the pages it reads leave the process's resident
// set as it goes (see release). An error of fn stops the scan and is
// returned as it is. Records are decoded and checked as Run and Events do
// (not their hash chains: see Check); fn may keep r and evs, and must not
// use j.
func (j *Journal) Scan(first uint64, events func(r *Run) bool, fn func(r Run, evs []Event) error) error {
	return j.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		walked := 0
		for k, v := c.Seek(itob(first)); k != nil; k, v = c.Next() {
			if walked++; walked%releaseEvery == 0 {
				j.release(tx)
			}
			r, err := decodeRun(k, v)
			if err != nil {
				return err
			}
			var evs []Event
			if events != nil && events(&r) {
				if evs, err = runEvents(tx, r.ID); err != nil {
					return err
				}
			}
			if err := fn(r, evs); err != nil {
				return err
			}
		}
		return nil
	})
}

// runEvents reads the events of run id, whose record exists, in sequence
// order.
func runEvents(tx *bolt.Tx, id uint64) ([]Event, error) {
	b := tx.Bucket(bucketEvents).Bucket(itob(id))
	if b == nil {
		return nil, fmt.Errorf("run %d: %w: no events bucket", id, ErrCorrupt)
	}
	var out []Event
	err := b.ForEach(func(k, v []byte) error {
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
	return out, err
}
