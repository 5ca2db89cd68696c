package sampledb

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Spec describes a sample database.
type Spec struct {
	// Seed makes the values; two Specs that differ only in Seed have the
	// same keys and different values.
	Seed uint64
	// Keys is how many keys to write, numbered from 0.
	Keys int
	// ValueSize is the size of each value in random bytes. Zero makes
	// short text values, "seed<Seed>-<number>-<random hex>".
	ValueSize int
	// Flushes is how many times to flush the memtable into a table while
	// writing, evenly spaced: after every Keys/Flushes keys. Keys after
	// the last flush stay in the write-ahead log.
	Flushes int
	// TableSize, if set, is Pebble's target table size at every level,
	// and MemTableSize its memtable size (large databases: fewer, larger
	// tables).
	TableSize    int64
	MemTableSize uint64
}

// batchBytes bounds the size of a write batch.
const batchBytes = 16 << 20

// Make writes the database s describes into dir on fs (nil: the real
// disk), creating dir if needed. On success every key is durable. On
// error dir may hold part of the database.
func Make(fs vfs.FS, dir string, s Spec) error {
	opts := &pebble.Options{Logger: quiet{}, MemTableSize: s.MemTableSize}
	if fs != nil {
		opts.FS = fs
	}
	if s.TableSize > 0 {
		for i := range opts.TargetFileSizes {
			opts.TargetFileSizes[i] = s.TableSize
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return fmt.Errorf("sample database %s: %w", dir, err)
	}
	if err := write(db, s); err != nil {
		db.Close()
		return fmt.Errorf("sample database %s: %w", dir, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("sample database %s: close: %w", dir, err)
	}
	return nil
}

func write(db *pebble.DB, s Spec) error {
	every := 0
	if s.Flushes > 0 {
		every = s.Keys / s.Flushes
	}
	values := newValues(s)
	width := len(fmt.Sprint(s.Keys - 1))
	b := db.NewBatch()
	for i := 0; i < s.Keys; i++ {
		if err := b.Set(fmt.Appendf(nil, "key-%0*d", max(6, width), i), values.next(i), nil); err != nil {
			return err
		}
		flush := every > 0 && (i+1)%every == 0
		if !flush && b.Len() < batchBytes {
			continue
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b = db.NewBatch()
		if flush {
			if err := db.Flush(); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
		}
	}
	// The last commit is synced even when empty: a synced commit syncs
	// the write-ahead log, and with it every earlier key.
	return b.Commit(pebble.Sync)
}

// values makes a Spec's values in key order.
type values struct {
	s   Spec
	pcg *rand.Rand
	cha io.Reader
	buf []byte
}

func newValues(s Spec) *values {
	v := &values{s: s}
	if s.ValueSize == 0 {
		v.pcg = rand.New(rand.NewPCG(s.Seed, 1))
		return v
	}
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(s.Seed >> (8 * i))
	}
	v.cha = rand.NewChaCha8(seed)
	v.buf = make([]byte, s.ValueSize)
	return v
}

// next returns key i's value; the batch copies it before the next call.
func (v *values) next(i int) []byte {
	if v.pcg != nil {
		return fmt.Appendf(nil, "seed%d-%d-%x", v.s.Seed, i, v.pcg.Uint64())
	}
	_, _ = v.cha.Read(v.buf)
	return v.buf
}

// quiet drops Pebble's log lines.
type quiet struct{}

func (quiet) Infof(string, ...any)         {}
func (quiet) Errorf(string, ...any)        {}
func (quiet) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
