package journal

import (
	"crypto/rand"
	"encoding/hex"
)

var keyID = []byte("id") // in bucket meta: the journal's identity (see ID)

// IDLen is the length of a journal id: 16 lower-case hexadecimal digits.
const IDLen = 16

// ID returns the journal's identity: 16 lower-case hexadecimal digits
// drawn from crypto/rand when the journal was created (or, for a journal
// made before ids existed, at its first read-write open), stored in the
// meta bucket under "id". It never changes afterwards, so names built
// from it (staging directories) stay valid across runs and processes. A
// read-only handle on a journal that has no id yet returns "".
func (j *Journal) ID() string { return j.id }

// newID returns a fresh journal id.
func newID() string {
	var b [IDLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand.Read crashes the program instead)
	return hex.EncodeToString(b[:])
}

// validID reports whether id is IDLen lower-case hexadecimal digits: the
// only form Open accepts, since other code builds path names from it.
func validID(id []byte) bool {
	if len(id) != IDLen {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
