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
	ev, _ := json.Marshal(Event{Run: 1, Seq: 1, From: "new", Event: "start", To: "precheck", Time: time.Unix(2, 0).UTC(), Details: json.RawMessage(`{"a":1}`)})
	f.Add(run, ev)
	f.Add([]byte(`{"id":1}`), []byte(`{"run":1,"seq":1}`))
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
			b, _ := json.Marshal(e)
			if _, err := decodeEvent(1, key, b); err != nil {
				t.Fatalf("re-encoded event refused: %v", err)
			}
		}
	})
}
