// Command journalgen writes a kvrflow journal of many runs, for the
// benchmarks of kvrflow journal verify, report and export (bench/audit).
//
//	journalgen -o PATH [-runs N] [-target DIR]
//
// The runs are journaled as the engine journals a restore of DIR (default
// /srv/app/db), through journal.Begin and journal.Append only (see
// internal/journalgen: one run in 20 is rolled back after its write step
// fails, the others commit), each record an fsynced bbolt transaction:
// write PATH on tmpfs (/dev/shm) and copy it where it is wanted. PATH must
// not exist.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"

	"github.com/kvrflow/kvrflow/internal/journalgen"
)

func main() {
	out := flag.String("o", "", "journal `PATH` to create (must not exist)")
	runs := flag.Int("runs", 10_000, "number of runs")
	target := flag.String("target", "/srv/app/db", "the runs' target `DIR`")
	flag.Parse()
	if *out == "" || *runs <= 0 {
		fmt.Fprintln(os.Stderr, "usage: journalgen -o PATH [-runs N] [-target DIR]")
		os.Exit(2)
	}
	if _, err := os.Stat(*out); !errors.Is(err, fs.ErrNotExist) {
		log.Fatalf("%s exists (or cannot be checked: %v): give a new path", *out, err)
	}
	if err := journalgen.Write(*out, *target, *runs); err != nil {
		log.Fatal(err)
	}
}
