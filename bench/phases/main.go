// Command phases reads the document of `kvrflow journal show RUN --json`
// on stdin and prints how long the run spent in each state, one
// "STATE SECONDS" line each in the order the run went through them,
// then "run SECONDS" (start to end of the run as journaled).
//
// With -count it prints instead "records N transitions N notes N": how
// many journal records the run has, and how many of them are state
// transitions (from != to) and notes (from == to).
//
// A state's time runs from the record that entered it to the record that
// left it: it is the step's work plus the journal write that ends it
// (notes written inside a step count toward the step). bench/run uses it
// to say where a restore's time goes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"
)

type event struct {
	From  string    `json:"from"`
	Event string    `json:"event"`
	To    string    `json:"to"`
	Time  time.Time `json:"time"`
}

type doc struct {
	Run struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	} `json:"run"`
	Events []event `json:"events"`
}

func main() {
	count := flag.Bool("count", false, "print the numbers of records, transitions and notes instead")
	flag.Parse()
	var d doc
	if err := json.NewDecoder(os.Stdin).Decode(&d); err != nil {
		log.Fatalf("phases: decode journal show document: %v", err)
	}
	if len(d.Events) == 0 {
		log.Fatal("phases: the run has no events")
	}
	if *count {
		notes := 0
		for _, ev := range d.Events {
			if ev.From == ev.To {
				notes++
			}
		}
		fmt.Printf("records %d transitions %d notes %d\n", len(d.Events), len(d.Events)-notes, notes)
		return
	}
	entered := d.Run.Start
	for _, ev := range d.Events {
		if ev.From == ev.To { // a note: still in the same state
			continue
		}
		fmt.Printf("%s %.4f\n", ev.From, ev.Time.Sub(entered).Seconds())
		entered = ev.Time
	}
	end := d.Run.End
	if end.IsZero() {
		end = d.Events[len(d.Events)-1].Time
	}
	fmt.Printf("run %.4f\n", end.Sub(d.Run.Start).Seconds())
}
