// Command gen makes benchmark data for the scripts in bench/.
//
//	gen -db DIR [-mb N] [-seed S]  a Pebble database of about N MiB of incompressible values
//	gen -ldb [-mb N] [-first K]    lines "key ==> value" for `ldb load` on stdout:
//	                               about N MiB of random hex values, keys from K on
//	gen -add BACKUP [-mb N]        one file of N MiB (000999.blob) added to the
//	                               kvrflow backup BACKUP, listed in its manifest
//
// The Pebble database is sampledb's (internal/sampledb, the generator the
// tests and kvrflow chaos use too), with values of 4 KiB; -seed fixes its
// values (default: new random ones each run). The -ldb keys are
// key-%09d, so several -ldb batches with increasing -first make one
// database.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"

	"github.com/kvrflow/kvrflow/internal/sampledb"
)

// valueSize is the size of each value in bytes (hex digits for -ldb).
const valueSize = 4096

func main() {
	dir := flag.String("db", "", "Pebble database directory to create")
	ldb := flag.Bool("ldb", false, "write `ldb load` lines to stdout instead of making a Pebble database")
	mb := flag.Int("mb", 200, "approximate size in MiB")
	first := flag.Int("first", 0, "first key number (-ldb)")
	seed := flag.Uint64("seed", 0, "`SEED` of the -db values (default: random)")
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
		if *seed == 0 {
			*seed = mrand.Uint64() | 1
		}
		if err := pebbleDB(*dir, *mb, *seed); err != nil {
			log.Fatal(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: gen -db DIR [-mb N] [-seed S] | gen -ldb [-mb N] [-first K] | gen -add BACKUP [-mb N]")
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
func pebbleDB(dir string, mb int, seed uint64) error {
	return sampledb.Make(nil, dir, sampledb.Spec{
		Seed:         seed,
		Keys:         mb * (1 << 20) / valueSize,
		ValueSize:    valueSize,
		Flushes:      1,
		TableSize:    tableSize,
		MemTableSize: 64 << 20,
	})
}

// addFile adds a file of size random bytes, 000999.blob, to the kvrflow
// backup dir (see bench/sigint-latency).
func addFile(dir string, size int64) error {
	return sampledb.AddFile(dir, "000999.blob", size, 9)
}
