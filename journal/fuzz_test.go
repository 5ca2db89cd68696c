package journal

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeRecords feeds arbitrary bytes to the decoders of the records
// the journal reads from disk: they never panic, every error is
// ErrCorrupt, and what they accept agrees with its key and re-encodes to
// a record they accept again.
func FuzzDecodeRecords(f *testing.F) {
	run, _ := json.Marshal(Run{ID: 1, Kind: "restore", Target: "/db", State: "write", Start: time.Unix(1, 0).UTC()})
	ev, _, _ := seal(Event{Run: 1, Seq: 1, From: "new", Event: "start", To: "precheck", Time: time.Unix(2, 0).UTC(), Details: json.RawMessage(`{"a":1}`), Prev: Genesis})
	f.Add(run, ev)
	bad, _, _ := seal(map[string]any{"run": 1, "seq": 1})
	f.Add([]byte(`{"id":1}`), bad)
	f.Add([]byte(`null`), []byte(`[]`))
	f.Add([]byte{0xff, 0x00}, []byte(`{"run":1,"seq":1,"from":"a","event":"b","to":"c","details":{"x":[1,2,3]}}`))
	key := itob(1)
	f.Fuzz(func(t *testing.T, runBytes, evBytes []byte) {
		r, err := decodeRun(key, runBytes)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeRun error %v is not ErrCorrupt", err)
		}
		if err == nil {
			b, _ := json.Marshal(r)
			if _, err := decodeRun(key, b); err != nil {
				t.Fatalf("re-encoded run refused: %v", err)
			}
		}
		e, err := decodeEvent(1, key, evBytes)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeEvent error %v is not ErrCorrupt", err)
		}
		if err == nil {
			b, hash, _ := seal(e)
			if hash != e.Hash {
				// Not an error: the canonical form of what was read may
				// differ from the bytes read (field order, spacing); the
				// chain covers the bytes as stored.
				_ = hash
			}
			if _, err := decodeEvent(1, key, b); err != nil {
				t.Fatalf("re-sealed event refused: %v", err)
			}
		}
	})
}

// recordEnded, which InFlight uses instead of decoding, agrees with the
// decoded record for any run Run encodes, whatever its strings hold.
func FuzzRecordEnded(f *testing.F) {
	f.Add("/db", "", "")
	f.Add("/db", "committed", `x "outcome":"y"`)
	f.Add(`/d"outcome":"b`, "", `\"outcome\":\"z`)
	f.Fuzz(func(t *testing.T, target, outcome, errText string) {
		b, err := json.Marshal(Run{ID: 1, Kind: "restore", Target: target, State: "write", Outcome: outcome, Error: errText})
		if err != nil {
			t.Skip()
		}
		if got, want := recordEnded(b), outcome != ""; got != want {
			t.Errorf("recordEnded(%s) = %v, want %v", b, got, want)
		}
	})
}
