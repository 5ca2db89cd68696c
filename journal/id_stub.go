package journal

import (
	"crypto/rand"
	"encoding/hex"

	bolt "go.etcd.io/bbolt"
)

// keyID is the meta key of the journal's identity.
var keyID = []byte("id")

// ID returns the journal's identity: 16 hex characters, random, made when
// the journal is first opened read-write and never changed. Directories
// kvrflow creates carry it in their names, so two journals on one
// database never take each other's directories for their own. A
// read-only open of a journal that has none yet returns "".
func (j *Journal) ID() string {
	var id string
	_ = j.view(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			id = string(m.Get(keyID))
		}
		return nil
	})
	if id != "" || j.db.IsReadOnly() {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	fresh := hex.EncodeToString(b)
	_ = j.update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if v := m.Get(keyID); v != nil {
			fresh = string(v)
			return nil
		}
		return m.Put(keyID, []byte(fresh))
	})
	return fresh
}
