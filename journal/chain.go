package journal

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The hash chain. Every run has an immutable begin record, stored in the
// begins bucket; every event and begin record is stored as
//
//	<canonical JSON> "\n" <hex SHA-256 of the canonical JSON>
//
// where the canonical JSON is the record's compact JSON encoding with its
// fields in the documented order (DESIGN.md, "Journal hash chain"). An
// event's Prev is the hash of the previous event of its run, or of the
// run's begin record for the first event; a begin record's prev_run is the
// hash of the previous run's begin record (or the anchor a prune left, or
// 64 zeros for the first run). A run's record keeps FirstHash (its begin
// record's hash) and FinalHash (its last event's hash).

// Genesis is the prev_run of the first run of a journal never pruned.
var Genesis = strings.Repeat("0", 64)

// BeginRecord is the immutable record of a run's start.
type BeginRecord struct {
	ID      uint64    `json:"id"`
	Kind    string    `json:"kind"`
	Source  string    `json:"source,omitempty"`
	Target  string    `json:"target"`
	Mode    string    `json:"mode,omitempty"`
	Engine  string    `json:"engine,omitempty"`
	Start   time.Time `json:"start"`
	PrevRun string    `json:"prev_run"`
	Hash    string    `json:"-"`
}

func beginOf(r *Run) BeginRecord {
	return BeginRecord{ID: r.ID, Kind: r.Kind, Source: r.Source, Target: r.Target, Mode: r.Mode, Engine: r.Engine, Start: r.Start, PrevRun: r.PrevRun}
}

// seal encodes v canonically and returns the stored value and the hash.
func seal(v any) (value []byte, hash string, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	hash = hex.EncodeToString(sum[:])
	return append(append(b, '\n'), hash...), hash, nil
}

// unseal splits a stored value into its canonical JSON and hash, and
// checks the hash.
func unseal(v []byte) (canonical []byte, hash string, err error) {
	i := bytes.LastIndexByte(v, '\n')
	if i < 0 {
		return nil, "", fmt.Errorf("no hash line")
	}
	canonical, hash = v[:i], string(v[i+1:])
	sum := sha256.Sum256(canonical)
	if want := hex.EncodeToString(sum[:]); hash != want {
		return nil, "", fmt.Errorf("hash %.16s… does not match the record's SHA-256 %.16s…", hash, want)
	}
	return canonical, hash, nil
}

func decodeBegin(k, v []byte) (BeginRecord, error) {
	var b BeginRecord
	id := uint64(0)
	if len(k) == 8 {
		id = beUint64(k)
	}
	canonical, hash, err := unseal(v)
	if err != nil {
		return b, fmt.Errorf("run %d begin record: %w: %w", id, ErrCorrupt, err)
	}
	if err := json.Unmarshal(canonical, &b); err != nil {
		return b, fmt.Errorf("run %d begin record: %w: %w", id, ErrCorrupt, err)
	}
	if b.ID != id {
		return b, fmt.Errorf("run %d begin record: %w: says run %d", id, ErrCorrupt, b.ID)
	}
	b.Hash = hash
	return b, nil
}

// lastEventHash returns the hash the run's next event must carry as Prev:
// its last event's, or its begin record's.
func lastEventHash(tx *bolt.Tx, id uint64) (string, time.Time, error) {
	events := tx.Bucket(bucketEvents).Bucket(itob(id))
	if events == nil {
		return "", time.Time{}, fmt.Errorf("run %d: %w: no events bucket", id, ErrCorrupt)
	}
	if k, v := events.Cursor().Last(); k != nil {
		ev, err := decodeEvent(id, k, v)
		if err != nil {
			return "", time.Time{}, err
		}
		return ev.Hash, ev.Time, nil
	}
	b, err := decodeBegin(itob(id), tx.Bucket(bucketBegins).Get(itob(id)))
	if err != nil {
		return "", time.Time{}, err
	}
	return b.Hash, b.Start, nil
}

// head returns the prev_run the next run must carry.
func head(tx *bolt.Tx) string {
	meta := tx.Bucket(bucketMeta)
	if h := meta.Get(keyHead); h != nil {
		return string(h)
	}
	if a := meta.Get(keyAnchor); a != nil {
		return string(a)
	}
	return Genesis
}

// Problem is one thing wrong in a journal: the run, the event sequence
// number (0 for the run itself) and what is wrong.
type Problem struct {
	Run  uint64 `json:"run"`
	Seq  uint64 `json:"seq"`
	What string `json:"what"`
}

func (p Problem) String() string {
	prefix := fmt.Sprintf("run %d: ", p.Run)
	if p.Seq != 0 {
		prefix = fmt.Sprintf("run %d event %d: ", p.Run, p.Seq)
	}
	// Each fact once: What may already name the record.
	return prefix + strings.TrimPrefix(p.What, prefix)
}

// Check verifies the journal's hash chains: every record's hash, every
// event's link to the previous one, every run's link to the previous run,
// the journal's head to the last run (so runs cut off the end show);
// sequence numbers contiguous from 1, times non-decreasing, and each run
// record agreeing with its begin record and its events (count, final
// hash, state, in-flight index), and no in-flight index entry without its
// run record. It returns every problem found, in run and sequence order:
// the first is the first bad record. It does not judge whether
// transitions are legal: that is the workflow's (see audit.Verify, which
// replays the runs CheckEach hands it).
func (j *Journal) Check() ([]Problem, error) { return j.CheckEach(nil) }

// CheckEach is Check, also calling fn, if not nil, with each run whose
// record decodes, in id order, as the check walks it: with whole true and
// the run's events (each decoded once, by the check) if the walk found
// nothing wrong with the run; with whole false and no events otherwise. A
// run handed over whole may still be named by a problem found after the
// walk: the journal's head concerns the last run. fn may keep r and evs;
// it is called inside the read transaction, so it must not use j.
func (j *Journal) CheckEach(fn func(r Run, evs []Event, whole bool)) ([]Problem, error) {
	var probs []Problem
	err := j.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		expect := Genesis
		if a := meta.Get(keyAnchor); a != nil {
			expect = string(a)
		}
		c := tx.Bucket(bucketRuns).Cursor()
		lastID := uint64(0)
		walked := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if walked++; walked%releaseEvery == 0 {
				j.release(tx)
			}
			lastID = beUint64(k)
			before := len(probs)
			r, evs, decoded := checkRun(tx, k, v, &expect, &probs)
			if fn != nil && decoded {
				whole := len(probs) == before
				if !whole {
					evs = nil
				}
				fn(r, evs, whole)
			}
		}
		// An index entry with no run record would send recovery after a run
		// the journal cannot show.
		ic := tx.Bucket(bucketInFlight).Cursor()
		for k, _ := ic.First(); k != nil; k, _ = ic.Next() {
			if len(k) == 8 && tx.Bucket(bucketRuns).Get(k) == nil {
				probs = append(probs, Problem{Run: beUint64(k), What: "in the in-flight index but has no run record"})
			}
		}
		// The head is the begin hash of the last run ever begun (Begin and
		// migrate set it, Prune leaves it): runs removed from the end of the
		// journal leave no broken link, only a head that points past them.
		if h := meta.Get(keyHead); (h != nil || lastID != 0) && string(h) != expect {
			probs = append(probs, Problem{Run: lastID, What: fmt.Sprintf("the journal's head is %.16s…, the last run's begin hash is %.16s… (runs after it were removed)", h, expect)})
		}
		return nil
	})
	// In run order (stable: a run's own problems keep their order).
	slices.SortStableFunc(probs, func(a, b Problem) int { return cmp.Compare(a.Run, b.Run) })
	return probs, err
}

// checkRun checks the run whose record is v under key k, appending what
// is wrong to probs: its begin record against *expect (the previous run's
// begin hash), which it then advances, and its events' chain. It returns
// the run and its events, decoded, and whether the run record decoded.
func checkRun(tx *bolt.Tx, k, v []byte, expect *string, probs *[]Problem) (r Run, evs []Event, decoded bool) {
	id := beUint64(k)
	add := func(seq uint64, format string, args ...any) {
		*probs = append(*probs, Problem{Run: id, Seq: seq, What: fmt.Sprintf(format, args...)})
	}
	if err := json.Unmarshal(v, &r); err != nil {
		add(0, "run record unreadable: %v", err)
		return r, nil, false
	}
	b, err := decodeBegin(k, tx.Bucket(bucketBegins).Get(k))
	if err != nil {
		add(0, "begin record: %v", err)
		return r, nil, true
	}
	switch {
	case b.PrevRun != *expect:
		add(0, "begin record links to %.16s…, the previous run's begin hash is %.16s…", b.PrevRun, *expect)
	case r.ID != b.ID || r.Kind != b.Kind || r.Source != b.Source || r.Target != b.Target || r.Mode != b.Mode ||
		r.Engine != b.Engine || !r.Start.Equal(b.Start):
		add(0, "run record disagrees with its begin record")
	case r.FirstHash != b.Hash || r.PrevRun != b.PrevRun:
		add(0, "run record's first hash or previous-run link disagrees with its begin record")
	}
	*expect = b.Hash
	prev, state, last := b.Hash, "", b.Start
	n := uint64(0)
	eb := tx.Bucket(bucketEvents).Bucket(k)
	if eb == nil {
		add(0, "no events bucket")
		return r, nil, true
	}
	evs = make([]Event, 0, min(r.Events, 64)) // a damaged count must not size an allocation
	ec := eb.Cursor()
	for ek, evv := ec.First(); ek != nil; ek, evv = ec.Next() {
		n++
		ev, err := decodeEvent(id, ek, evv)
		if err != nil {
			add(n, "%v", err)
			return r, nil, true
		}
		switch {
		case ev.Seq != n:
			add(n, "sequence number %d where %d was due (an event was removed or moved)", ev.Seq, n)
		case ev.Prev != prev:
			add(n, "links to %.16s…, the previous record's hash is %.16s… (an event before it changed, was removed or moved)", ev.Prev, prev)
		case ev.Time.Before(last):
			add(n, "time %s before the previous record's %s", ev.Time.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
		default:
			prev, state, last = ev.Hash, ev.To, ev.Time
			evs = append(evs, ev)
			continue
		}
		return r, nil, true
	}
	switch {
	case r.Events != n:
		add(0, "run record counts %d events, the journal holds %d (events were added or removed)", r.Events, n)
	case r.FinalHash != prev:
		add(0, "run record's final hash %.16s… is not its last event's %.16s… (the run was truncated or its last event changed)", r.FinalHash, prev)
	case n > 0 && r.State != state:
		add(0, "run record says state %q, its last event leads to %q", r.State, state)
	case r.InFlight() != (tx.Bucket(bucketInFlight).Get(k) != nil):
		add(0, "in-flight index disagrees with the run's outcome %q", r.Outcome)
	}
	return r, evs, true
}
