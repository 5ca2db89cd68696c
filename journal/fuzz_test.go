package journal

import (
	"bytes"
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

// FuzzDecodeCanonicalEvent: whatever decodeCanonicalEvent accepts,
// json.Unmarshal accepts too and decodes to the same Event; and the
// canonical encoding of any event is accepted (if its strings are plain
// ASCII) and decodes back to it (its details as json.Unmarshal reads
// them: json.Marshal escapes <, > and & in them).
func FuzzDecodeCanonicalEvent(f *testing.F) {
	f.Add([]byte(`{"run":1,"seq":2,"from":"a","event":"b","to":"c","time":"2026-01-02T03:04:05.123456789Z","details":{"x":[1,"prev",{"prev":2}]},"prev":"00"}`),
		"write", `{"files":[{"name":"a\"b"}],"prev":"x"}`)
	f.Add([]byte(`{"run":01,"seq":2,"from":"a","event":"b","to":"c","time":"2026-01-02T03:04:05Z","prev":"00"}`), "é", `null`)
	f.Add([]byte(`{"run":1,"seq":2,"from":"a\u0041","event":"b","to":"c","time":"2026-01-02T03:04:05+01:00","details":,"prev":"00"}`), "", `[]`)
	f.Fuzz(func(t *testing.T, b []byte, state, details string) {
		if got, ok := decodeCanonicalEvent(b); ok {
			var want Event
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("decodeCanonicalEvent accepts %q, json.Unmarshal refuses it: %v", b, err)
			}
			if !sameEvent(got, want) {
				t.Fatalf("decodeCanonicalEvent(%q) = %+v, json.Unmarshal gives %+v", b, got, want)
			}
		}
		ev := Event{Run: 7, Seq: 3, From: state, Event: "ev", To: state, Time: time.Unix(1700000000, 123456789).UTC(), Prev: Genesis}
		if json.Valid([]byte(details)) {
			var c bytes.Buffer
			_ = json.Compact(&c, []byte(details))
			ev.Details = c.Bytes()
		}
		canonical, err := json.Marshal(ev)
		if err != nil {
			t.Skip()
		}
		got, ok := decodeCanonicalEvent(canonical)
		plain := true
		for _, c := range []byte(state) {
			plain = plain && c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
		}
		switch {
		case !ok && plain:
			t.Fatalf("decodeCanonicalEvent refuses the canonical %s", canonical)
		case ok:
			// json.Marshal escapes <, > and & inside the details (a
			// json.RawMessage) too: the details read back are those bytes,
			// as json.Unmarshal reads them, not the ones marshalled.
			var want Event
			if err := json.Unmarshal(canonical, &want); err != nil {
				t.Fatalf("json.Unmarshal refuses the canonical %s: %v", canonical, err)
			}
			if !sameEvent(got, want) || !sameEvent(want, Event{Run: ev.Run, Seq: ev.Seq, From: ev.From, Event: ev.Event, To: ev.To, Time: ev.Time, Details: want.Details, Prev: ev.Prev}) {
				t.Fatalf("decodeCanonicalEvent(%s) = %+v, want %+v", canonical, got, want)
			}
		}
	})
}

// sameEvent compares two events field by field (times with Equal).
func sameEvent(a, b Event) bool {
	return a.Run == b.Run && a.Seq == b.Seq && a.From == b.From && a.Event == b.Event && a.To == b.To &&
		a.Time.Equal(b.Time) && a.Time.Location().String() == b.Time.Location().String() &&
		bytes.Equal(a.Details, b.Details) && a.Prev == b.Prev && a.Hash == b.Hash
}
