// Command gen makes a Pebble database of about -mb megabytes of
// incompressible values, for the benchmarks in bench/.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

func main() {
	dir := flag.String("db", "", "database directory to create")
	mb := flag.Int("mb", 200, "approximate size in MiB")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: gen -db DIR [-mb N]")
		os.Exit(2)
	}
	db, err := pebble.Open(*dir, &pebble.Options{})
	if err != nil {
		log.Fatal(err)
	}
	val := make([]byte, 4096)
	n := *mb * 256
	b := db.NewBatch()
	for i := 0; i < n; i++ {
		_, _ = rand.Read(val)
		if err := b.Set([]byte(fmt.Sprintf("key-%09d", i)), val, nil); err != nil {
			log.Fatal(err)
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				log.Fatal(err)
			}
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		log.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
}
