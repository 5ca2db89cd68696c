package journal

import (
	"bytes"
	"encoding/json"
)

// decodeCanonicalEvent parses an event's canonical JSON, the compact
// encoding json.Marshal gives an Event (fields in declaration order,
// details left out when empty), without encoding/json's reflection: a
// verify of a large journal spends most of its time decoding events. It
// accepts only what it can parse exactly as json.Unmarshal would, and
// reports false for anything else (a string with an escape or a non-ASCII
// byte, a number with a sign or leading zero, a field out of order or
// unknown, spacing): the caller then uses json.Unmarshal, so a record
// decodes to the same Event either way. Details are checked with
// json.Valid and copied, as json.RawMessage's UnmarshalJSON copies them.
func decodeCanonicalEvent(b []byte) (ev Event, ok bool) {
	p := parser{b: b}
	if !p.lit(`{"run":`) || !p.uint(&ev.Run) || !p.lit(`,"seq":`) || !p.uint(&ev.Seq) ||
		!p.lit(`,"from":`) || !p.str(&ev.From) || !p.lit(`,"event":`) || !p.str(&ev.Event) ||
		!p.lit(`,"to":`) || !p.str(&ev.To) || !p.lit(`,"time":`) {
		return ev, false
	}
	t, ok := p.raw()
	if !ok || ev.Time.UnmarshalText(t) != nil {
		return ev, false
	}
	if p.lit(`,"details":`) {
		// The details run to the last "prev" key: a quote inside a JSON
		// string is escaped, and prev is the last field, so the last
		// `,"prev":` of the record is its key.
		end := bytes.LastIndex(p.b, []byte(`,"prev":`))
		if end < 0 {
			return ev, false
		}
		d := p.b[:end]
		if len(d) == 0 || !json.Valid(d) {
			return ev, false
		}
		ev.Details = bytes.Clone(d)
		p.b = p.b[end:]
	}
	if !p.lit(`,"prev":`) || !p.str(&ev.Prev) || !p.lit(`}`) || len(p.b) != 0 {
		return ev, false
	}
	return ev, true
}

// parser consumes b from the front.
type parser struct{ b []byte }

// lit consumes s.
func (p *parser) lit(s string) bool {
	if len(p.b) < len(s) || string(p.b[:len(s)]) != s {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// uint consumes a JSON number that is a uint64 without a sign, exponent,
// fraction or leading zero.
func (p *parser) uint(v *uint64) bool {
	n, i := uint64(0), 0
	for ; i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9'; i++ {
		d := uint64(p.b[i] - '0')
		if n > (1<<64-1-d)/10 {
			return false // overflow
		}
		n = n*10 + d
	}
	if i == 0 || i > 1 && p.b[0] == '0' {
		return false
	}
	p.b, *v = p.b[i:], n
	return true
}

// raw consumes a JSON string of printable ASCII without escapes and
// returns its contents.
func (p *parser) raw() ([]byte, bool) {
	if len(p.b) == 0 || p.b[0] != '"' {
		return nil, false
	}
	for i := 1; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			s := p.b[1:i]
			p.b = p.b[i+1:]
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// str is raw into a string.
func (p *parser) str(s *string) bool {
	r, ok := p.raw()
	if ok {
		*s = string(r)
	}
	return ok
}
