package audit

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
	"github.com/kvrflow/kvrflow/journal"
)

// DefaultRecent is how many of the latest runs Report shows in detail
// when it is asked for no run and no time range.
const DefaultRecent = 50

// reportTopTargets is how many targets the summary names; the others are
// counted together.
const reportTopTargets = 20

// ReportOptions select the runs Report shows in detail. Every run of the
// journal is counted in the summary whatever they select.
type ReportOptions struct {
	// Workflows give each run's decisions and failed step, by kind
	// (Default if nil).
	Workflows Workflows
	// Recent is how many of the latest runs to show in detail when Run,
	// Since and Until are not set: DefaultRecent if 0, none if negative.
	Recent int
	// Run, if not 0, is the one run shown in detail (journal.ErrNotFound
	// if the journal does not hold it).
	Run uint64
	// Since and Until, if either is set, select the runs that started at
	// or after Since and before Until (a zero bound is open). Every run
	// in the range is shown: a wide range makes a large page.
	Since, Until time.Time
}

// ReportStats say what a report holds.
type ReportStats struct {
	Runs     int `json:"runs"`     // runs in the journal, all counted in the summary
	Detailed int `json:"detailed"` // runs shown in detail
}

// Report writes one self-contained HTML page about the journal at path
// (read-only): a summary of every run (counts by outcome, by kind and by
// target, duration percentiles of the ended runs, failures by the step
// that failed), and the runs opts selects (by default the DefaultRecent
// latest) each with its timeline, what recovery would have done at each
// point, and its path through the states, drawn as inline SVG. The page
// loads nothing: no scripts, no style sheets, no images from anywhere.
//
// It decodes every run record but the events of only the runs shown and
// of the runs that failed: its memory grows with those, not with the
// journal.
func Report(w io.Writer, path string, opts ReportOptions) (ReportStats, error) {
	wf := opts.Workflows.orDefault()
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	if err != nil {
		return ReportStats{}, err
	}
	defer j.Close()
	page := reportPage{Journal: path, Generated: time.Now().UTC().Format(time.RFC3339)}
	sum, detailed, err := summarizeRuns(j, wf, opts)
	if err != nil {
		return ReportStats{}, err
	}
	page.Summary = sum
	switch {
	case opts.Run != 0:
		page.Selection = fmt.Sprintf("run %d", opts.Run)
	case !opts.Since.IsZero() || !opts.Until.IsZero():
		page.Selection = "the runs started " + rangeText(opts.Since, opts.Until)
	default:
		page.Selection = fmt.Sprintf("the latest %d runs", len(detailed))
	}
	for _, r := range detailed {
		evs, err := j.Events(r.ID)
		if err != nil {
			return ReportStats{}, err
		}
		tl := timeline(wf[r.Kind], r, evs)
		rr := reportRun{Timeline: tl, Start: startState(wf[r.Kind], tl), Duration: "in flight"}
		if !r.End.IsZero() {
			rr.Duration = r.End.Sub(r.Start).Round(time.Millisecond).String()
		}
		rr.Path = pathSVG(wf[r.Kind], tl)
		page.Runs = append(page.Runs, rr)
	}
	if err := reportTmpl.Execute(w, page); err != nil {
		return ReportStats{}, err
	}
	return ReportStats{Runs: sum.Runs, Detailed: len(page.Runs)}, nil
}

// rangeText describes [since, until).
func rangeText(since, until time.Time) string {
	const f = "2006-01-02 15:04:05Z07:00"
	switch {
	case until.IsZero():
		return "at or after " + since.UTC().Format(f)
	case since.IsZero():
		return "before " + until.UTC().Format(f)
	}
	return "from " + since.UTC().Format(f) + " to before " + until.UTC().Format(f)
}

// count is a row of a summary table.
type count struct {
	Name string
	N    int
}

// summary is the report's aggregate of every run.
type summary struct {
	Runs         int
	First, Last  time.Time // start of the first run and of the last
	ByOutcome    []count
	ByKind       []count
	ByTarget     []count
	OtherTargets count // the runs of the targets past reportTopTargets
	Ended        int
	Percentiles  []quantile // of the ended runs' durations
	Failures     []count    // by step and event ("write (fail)")
}

// summarizeRuns reads every run record once, and the events of the runs
// that failed (for the step they failed in), and returns the summary and
// the runs opts selects for detail.
func summarizeRuns(j *journal.Journal, wf Workflows, opts ReportOptions) (*summary, []journal.Run, error) {
	recent := opts.Recent
	if recent == 0 {
		recent = DefaultRecent
	}
	ranged := !opts.Since.IsZero() || !opts.Until.IsZero()
	var detailed []journal.Run
	outcomes, kinds, targets := map[string]int{}, map[string]int{}, map[string]int{}
	var durations []time.Duration
	failures := map[string]int{}
	sum := &summary{}
	// The events of the runs that failed are read, for the step they
	// failed in; no other run's.
	failed := func(r *journal.Run) bool {
		def := wf[r.Kind]
		return def != nil && failedRun(def, r)
	}
	err := j.Scan(0, failed, func(r journal.Run, evs []journal.Event) error {
		sum.Runs++
		if sum.Runs == 1 {
			sum.First = r.Start
		}
		sum.Last = r.Start
		outcome := r.Outcome
		if r.InFlight() {
			outcome = "in flight"
		} else {
			durations = append(durations, r.End.Sub(r.Start))
		}
		outcomes[outcome]++
		kinds[r.Kind]++
		targets[r.Target]++
		if evs != nil {
			failures[failedStep(wf[r.Kind], evs)]++
		}
		switch {
		case opts.Run != 0:
			if r.ID == opts.Run {
				detailed = append(detailed, r)
			}
		case ranged:
			if !r.Start.Before(opts.Since) && (opts.Until.IsZero() || r.Start.Before(opts.Until)) {
				detailed = append(detailed, r)
			}
		case recent > 0:
			if len(detailed) == recent {
				detailed = append(detailed[:0], detailed[1:]...) // recent is small: a copy beats a ring's bookkeeping
			}
			detailed = append(detailed, r)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if opts.Run != 0 && len(detailed) == 0 {
		return nil, nil, fmt.Errorf("run %d: %w", opts.Run, journal.ErrNotFound)
	}
	sum.ByOutcome, sum.ByKind = sortedCounts(outcomes), sortedCounts(kinds)
	sum.ByTarget = sortedCounts(targets)
	if len(sum.ByTarget) > reportTopTargets {
		others := sum.ByTarget[reportTopTargets:]
		for _, c := range others {
			sum.OtherTargets.N += c.N
		}
		sum.OtherTargets.Name = fmt.Sprint(len(others), " other targets")
		sum.ByTarget = sum.ByTarget[:reportTopTargets]
	}
	sum.Ended = len(durations)
	sum.Percentiles = percentiles(durations)
	sum.Failures = sortedCounts(failures)
	return sum, detailed, nil
}

// failedRun reports whether r's state is def's rollback state or the
// state rolling back ends in.
func failedRun(def *fsm.Definition, r *journal.Run) bool {
	if def.Rollback == "" {
		return false
	}
	if r.State == def.Rollback {
		return true
	}
	end, ok := def.Dest(def.Rollback, def.Forward[def.Rollback])
	return ok && r.State == end
}

// failedStep names the transition into def's rollback state: its state
// and event ("write (fail)").
func failedStep(def *fsm.Definition, evs []journal.Event) string {
	for _, ev := range evs {
		if ev.To == def.Rollback && ev.From != def.Rollback {
			return ev.From + " (" + ev.Event + ")"
		}
	}
	return "unknown"
}

// sortedCounts returns m's entries, the largest count first (ties by
// name).
func sortedCounts(m map[string]int) []count {
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{k, n})
	}
	slices.SortFunc(out, func(a, b count) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Name, b.Name)) })
	return out
}

// quantile is a duration percentile: "p90", "1.2s".
type quantile struct{ Name, Value string }

// percentiles returns p50, p90, p99 and max of ds (nearest rank), which
// it sorts.
func percentiles(ds []time.Duration) []quantile {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	var out []quantile
	for _, p := range []struct {
		name string
		q    int // per thousand
	}{{"p50", 500}, {"p90", 900}, {"p99", 990}, {"max", 1000}} {
		i := (len(ds)*p.q + 999) / 1000 // the nearest rank, 1-based
		d := ds[max(i, 1)-1]
		out = append(out, quantile{p.name, d.Round(time.Millisecond).String()})
	}
	return out
}
