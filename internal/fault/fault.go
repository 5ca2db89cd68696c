// Package fault implements kvrflow's named fault points.
//
// Production code calls Hit at named points right before and after each
// durable operation and at every step boundary. With no spec set, Hit is a
// nil check and returns nil. A spec, parsed from KVRFLOW_FAULT or the
// --fault flag, maps points to actions:
//
//	POINT:ACTION[@N][,POINT:ACTION[@N]...]
//
// where ACTION is crash (the process kills itself with SIGKILL, as kill -9
// would: no deferred cleanup, no journal write), eio, enospc or
// delay=DURATION, and @N fires on the N-th hit of the point only (default:
// every hit).
//
// A Set with a logger (SetLog) logs each rule that fires, before it acts:
// "fault point fired" with the point, the hit number and the action, at
// info level the first time a rule fires and at debug level after that.
// Tests of the kvrflow binary wait for that line to know that a restore
// has reached a point (and, with delay, is held there) instead of
// sleeping and guessing.
//
// # Caveats
//
// A Set is safe for concurrent use. Tests that must not kill the test
// binary install a Crash function with SetCrash.
package fault

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// EnvVar is the environment variable the CLI reads a fault spec from.
const EnvVar = "KVRFLOW_FAULT"

// ErrBadSpec is returned by Parse when a fault spec does not parse or names
// an unknown point.
var ErrBadSpec = errors.New("bad fault spec")

// ErrInjected marks every error a fault point returns; it wraps the errno
// (EIO or ENOSPC) so callers see a realistic cause.
var ErrInjected = errors.New("injected fault")

// Action is what a fault point does when it fires.
type Action int

const (
	// Crash ends the process at once.
	Crash Action = iota
	// EIO makes the point return an I/O error.
	EIO
	// ENOSPC makes the point return a no-space error.
	ENOSPC
	// Delay sleeps, then lets the operation go on.
	Delay
)

type rule struct {
	action Action
	delay  time.Duration
	nth    int // 0: every hit
	spec   string
}

// Set is a parsed fault spec. The nil *Set injects nothing.
type Set struct {
	mu    sync.Mutex
	rules map[string]rule
	hits  map[string]int
	fired map[string]int // how often each point's rule fired
	crash func(point string)
	log   *zerolog.Logger
}

// Parse parses a spec. An empty spec returns a nil Set.
func Parse(spec string) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s := NewCounter()
	for _, part := range strings.Split(spec, ",") {
		name, act, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want POINT:ACTION; valid points: %s", ErrBadSpec, part, strings.Join(Names(), ", "))
		}
		if now, ok := aliases[name]; ok {
			name = now
		}
		if _, known := points[name]; !known {
			return nil, fmt.Errorf("%w: unknown point %q; valid points: %s", ErrBadSpec, name, strings.Join(Names(), ", "))
		}
		r := rule{spec: act}
		if a, n, ok := strings.Cut(act, "@"); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("%w: %q: @N wants a whole number from 1", ErrBadSpec, part)
			}
			act, r.nth = a, v
		}
		switch {
		case act == "crash":
			r.action = Crash
		case act == "eio":
			r.action = EIO
		case act == "enospc":
			r.action = ENOSPC
		case strings.HasPrefix(act, "delay="):
			d, err := time.ParseDuration(strings.TrimPrefix(act, "delay="))
			if err != nil || d < 0 {
				return nil, fmt.Errorf("%w: %q: bad delay", ErrBadSpec, part)
			}
			r.action, r.delay = Delay, d
		default:
			return nil, fmt.Errorf("%w: %q: action must be crash, eio, enospc or delay=DURATION", ErrBadSpec, part)
		}
		if _, dup := s.rules[name]; dup {
			return nil, fmt.Errorf("%w: point %s given twice", ErrBadSpec, name)
		}
		s.rules[name] = r
	}
	return s, nil
}

// FromEnv parses the spec in KVRFLOW_FAULT.
func FromEnv() (*Set, error) { return Parse(os.Getenv(EnvVar)) }

// SetCrash replaces what the crash action does (tests use it to stop a
// restore without killing the test binary). It returns s.
func (s *Set) SetCrash(fn func(point string)) *Set {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crash = fn
	return s
}

// SetLog makes s log each rule that fires to log (see the package
// comment). It returns s.
func (s *Set) SetLog(log zerolog.Logger) *Set {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = &log
	return s
}

// Hit is called by production code at a named point. It returns nil unless
// a rule for the point fires with eio or enospc; with crash it does not
// return.
func (s *Set) Hit(point string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if _, ok := points[point]; !ok {
		s.mu.Unlock()
		panic("fault: unregistered point " + point)
	}
	s.hits[point]++
	n := s.hits[point]
	r, ok := s.rules[point]
	crash, log := s.crash, s.log
	fire := ok && (r.nth == 0 || r.nth == n)
	if fire {
		s.fired[point]++
	}
	first := s.fired[point] == 1
	s.mu.Unlock()
	if !fire {
		return nil
	}
	if log != nil {
		ev := log.Debug()
		if first {
			ev = log.Info()
		}
		ev.Str("point", point).Int("hit", n).Str("action", r.spec).Msg("fault point fired")
	}
	switch r.action {
	case Crash:
		if crash != nil {
			crash(point)
			return fmt.Errorf("%w: crash at %s", ErrInjected, point)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is not deliverable late; never return
	case EIO:
		return fmt.Errorf("%w at %s: %w", ErrInjected, point, syscall.EIO)
	case ENOSPC:
		return fmt.Errorf("%w at %s: %w", ErrInjected, point, syscall.ENOSPC)
	case Delay:
		time.Sleep(r.delay)
	}
	return nil
}

// Unfired lists, sorted, the rules of the spec (POINT:ACTION[@N]) that
// never fired: their point was not hit, or not N times. A spec that
// promised a fault and delivered none is worth saying aloud.
func (s *Set) Unfired() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, r := range s.rules {
		n := s.hits[name]
		if n == 0 || (r.nth != 0 && n < r.nth) {
			rule := name
			if r.nth != 0 {
				rule += "@" + strconv.Itoa(r.nth)
			}
			out = append(out, fmt.Sprintf("%s (hit %d times)", rule, n))
		}
	}
	sort.Strings(out)
	return out
}

// Hits returns how often each point was hit.
func (s *Set) Hits() map[string]int {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.hits))
	for k, v := range s.hits {
		out[k] = v
	}
	return out
}

// Point describes one named fault point.
type Point struct {
	Name string
	What string
}

var points = map[string]string{}

// Register declares a point; packages register theirs at init. It returns
// the name so it can initialize a constant-like variable.
func Register(name, what string) string {
	if _, dup := points[name]; dup {
		panic("fault: duplicate point " + name)
	}
	points[name] = what
	return name
}

var aliases = map[string]string{}

// Alias makes Parse accept old, a point's earlier name, for the
// registered point now. Parse reports the rename nowhere: old specs keep
// working; `kvrflow faults` lists the aliases.
func Alias(old, now string) {
	if _, ok := points[now]; !ok {
		panic("fault: alias " + old + " of unregistered point " + now)
	}
	if _, dup := points[old]; dup {
		panic("fault: alias " + old + " is a point")
	}
	aliases[old] = now
}

// Aliases returns the earlier names Parse accepts, each with its point.
func Aliases() map[string]string {
	out := make(map[string]string, len(aliases))
	for k, v := range aliases {
		out[k] = v
	}
	return out
}

// Points lists every registered point, sorted by name.
func Points() []Point {
	out := make([]Point, 0, len(points))
	for n, w := range points {
		out = append(out, Point{n, w})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names lists the registered point names, sorted.
func Names() []string {
	var out []string
	for _, p := range Points() {
		out = append(out, p.Name)
	}
	return out
}

// NewCounter returns a Set with no rules: it injects nothing and counts
// the hits of every point (chaos uses it to learn which points a restore
// passes, and how often).
func NewCounter() *Set {
	return &Set{rules: map[string]rule{}, hits: map[string]int{}, fired: map[string]int{}}
}
