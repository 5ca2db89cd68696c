// Command gen makes benchmark data for the scripts in bench/.
//
//	gen -db DIR [-mb N]            a Pebble database of about N MiB of incompressible values
//	gen -ldb [-mb N] [-first K]    lines "key ==> value" for `ldb load` on stdout:
//	                               about N MiB of random hex values, keys from K on
//	gen -add BACKUP [-mb N]        one file of N MiB (000999.blob) added to the
//	                               kvrflow backup BACKUP, listed in its manifest
//
// Keys are key-%09d in both, so several -ldb batches with increasing
// -first make one database.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"hash/crc32"
	"log"
	mrand "math/rand/v2"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kvrflow/kvrflow/internal/manifest"
)

// valueSize is the size of each value in bytes (hex digits for -ldb).
const valueSize = 4096

func main() {
	dir := flag.String("db", "", "Pebble database directory to create")
	ldb := flag.Bool("ldb", false, "write `ldb load` lines to stdout instead of making a Pebble database")
	mb := flag.Int("mb", 200, "approximate size in MiB")
	first := flag.Int("first", 0, "first key number (-ldb)")
	add := flag.String("add", "", "kvrflow backup `DIR` to add one file of -mb MiB to")
	flag.Parse()
	switch {
	case *add != "":
		if err := addFile(*add, int64(*mb)<<20); err != nil {
			log.Fatal(err)
		}
	case *ldb:
		if err := ldbLines(*mb, *first); err != nil {
			log.Fatal(err)
		}
	case *dir != "":
		if err := pebbleDB(*dir, *mb); err != nil {
			log.Fatal(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: gen -db DIR [-mb N] | gen -ldb [-mb N] [-first K] | gen -add BACKUP [-mb N]")
		os.Exit(2)
	}
}

// ldbLines writes mb MiB of values as `key ==> value` lines, each value
// valueSize random hex digits (4 bits of entropy a byte: Snappy, which
// has no entropy coder, does not shrink them).
func ldbLines(mb, first int) error {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	raw := make([]byte, valueSize/2)
	val := make([]byte, valueSize)
	for i := first; i < first+mb*(1<<20)/valueSize; i++ {
		_, _ = rand.Read(raw)
		hex.Encode(val, raw)
		fmt.Fprintf(w, "key-%09d ==> ", i)
		w.Write(val)
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return w.Flush()
}

// tableSize is the target size of the Pebble database's tables: a 1 GiB
// database has about 100 of them, as the link-mode target says
// (Pebble's default, 2 MiB at L0 doubling per level, gives about 600).
const tableSize = 10 << 20

// pebbleDB makes a Pebble database of about mb MiB of random values, in
// tables of about tableSize.
func pebbleDB(dir string, mb int) error {
	opts := &pebble.Options{MemTableSize: 64 << 20}
	for i := range opts.TargetFileSizes {
		opts.TargetFileSizes[i] = tableSize
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return err
	}
	val := make([]byte, valueSize)
	n := mb * (1 << 20) / valueSize
	b := db.NewBatch()
	for i := 0; i < n; i++ {
		_, _ = rand.Read(val)
		if err := b.Set([]byte(fmt.Sprintf("key-%09d", i)), val, nil); err != nil {
			return err
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if err := db.Flush(); err != nil {
		return err
	}
	return db.Close()
}

// addFile writes a file of size random bytes, 000999.blob, into the
// kvrflow backup dir and lists it in the backup's manifest, resealed: a
// backup whose restore spends its time copying one large file (see
// bench/sigint-latency). The database it restores does not reference the
// file.
func addFile(dir string, size int64) error {
	const name = "000999.blob"
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	rng := mrand.NewChaCha8([32]byte{9})
	buf := make([]byte, 1<<20)
	table := crc32.MakeTable(crc32.Castagnoli)
	var crc uint32
	for n := int64(0); n < size; n += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), size-n)]
		_, _ = rng.Read(b)
		crc = crc32.Update(crc, table, b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	mpath := filepath.Join(dir, manifest.Name)
	mf, err := os.Open(mpath)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(mf)
	mf.Close()
	if err != nil {
		return err
	}
	m.Files = append(m.Files, manifest.File{Name: name, Size: size, CRC32C: crc})
	return os.WriteFile(mpath, m.Encode(), 0o644)
}
