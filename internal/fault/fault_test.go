package fault_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// Points of these tests. Register panics on a duplicate, so the names are
// this file's own.
var (
	pointA = fault.Register("faulttest.a", "test point a")
	pointB = fault.Register("faulttest.b", "test point b")
	pointC = fault.Register("faulttest.c", "test point c")
)

// mustParse parses spec and installs a crash function that records the
// point instead of killing the test binary.
func mustParse(tb testing.TB, spec string) (*fault.Set, *[]string) {
	tb.Helper()
	s, err := fault.Parse(spec)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", spec, err)
	}
	if s == nil {
		tb.Fatalf("Parse(%q) returned a nil Set", spec)
	}
	var crashes []string
	s.SetCrash(func(point string) { crashes = append(crashes, point) })
	return s, &crashes
}

func TestParse_ValidSpecs(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		point   string
		errno   error    // wanted from the first hit; nil for none
		crashes []string // wanted after the first hit
	}{
		{spec: "faulttest.a:crash", point: pointA, crashes: []string{pointA}},
		{spec: "faulttest.a:eio", point: pointA, errno: syscall.EIO},
		{spec: "faulttest.a:enospc", point: pointA, errno: syscall.ENOSPC},
		{spec: "faulttest.a:delay=5ms", point: pointA},
		{spec: "faulttest.a:eio@1", point: pointA, errno: syscall.EIO},
		{spec: "faulttest.a:eio@2", point: pointA},
		{spec: " faulttest.b:eio , faulttest.a:enospc ", point: pointA, errno: syscall.ENOSPC},
		{spec: "faulttest.b:eio", point: pointA},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, crashes := mustParse(t, tc.spec)
			err := s.Hit(tc.point)
			if tc.errno == nil && err != nil && len(tc.crashes) == 0 {
				t.Errorf("first Hit(%s) = %v, want nil", tc.point, err)
			}
			if tc.errno != nil && !errors.Is(err, tc.errno) {
				t.Errorf("first Hit(%s) = %v, want %v", tc.point, err, tc.errno)
			}
			if !slices.Equal(*crashes, tc.crashes) {
				t.Errorf("crashes %v, want %v", *crashes, tc.crashes)
			}
		})
	}
}

func TestParse_EmptySpecIsNilSet(t *testing.T) {
	for _, spec := range []string{"", "  ", "\n"} {
		s, err := fault.Parse(spec)
		if s != nil || err != nil {
			t.Errorf("Parse(%q) = %v, %v; want nil, nil", spec, s, err)
		}
	}
}

func TestParse_InvalidSpecs(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string // in the message
	}{
		{"faulttest.nope:eio", []string{`unknown point "faulttest.nope"`, "valid points:", pointA, pointB}},
		{"faulttest.a:explode", []string{"action must be crash, eio, enospc or delay=DURATION"}},
		{"faulttest.a:", []string{"action must be"}},
		{"faulttest.a:eio@0", []string{"@N wants a whole number from 1"}},
		{"faulttest.a:eio@-1", []string{"@N"}},
		{"faulttest.a:eio@x", []string{"@N"}},
		{"faulttest.a:eio@", []string{"@N"}},
		{"faulttest.a", []string{"want POINT:ACTION", "valid points:", pointA}},
		{"faulttest.a:eio,", []string{"want POINT:ACTION"}},
		{"faulttest.a:eio,,faulttest.b:eio", []string{"want POINT:ACTION"}},
		{"faulttest.a:delay=", []string{"bad delay"}},
		{"faulttest.a:delay=soon", []string{"bad delay"}},
		{"faulttest.a:delay=-1s", []string{"bad delay"}},
		{"faulttest.a:EIO", []string{"action must be"}},
		{"faulttest.a:eio,faulttest.nope:crash", []string{`unknown point "faulttest.nope"`}},
	} {
		s, err := fault.Parse(tc.spec)
		if err == nil {
			t.Errorf("Parse(%q) succeeded: %+v", tc.spec, s)
			continue
		}
		if !errors.Is(err, fault.ErrBadSpec) {
			t.Errorf("Parse(%q) = %v, want ErrBadSpec", tc.spec, err)
		}
		if s != nil {
			t.Errorf("Parse(%q) returned a Set with its error", tc.spec)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) error %q does not say %q", tc.spec, err, w)
			}
		}
	}
}

func TestHit_EIOMatchesErrnoAndErrInjected(t *testing.T) {
	s, _ := mustParse(t, "faulttest.a:eio")
	err := s.Hit(pointA)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("Hit = %v, want syscall.EIO", err)
	}
	if !errors.Is(err, fault.ErrInjected) {
		t.Errorf("Hit = %v, want fault.ErrInjected", err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Hit = %v matches ENOSPC", err)
	}
	if !strings.Contains(err.Error(), pointA) {
		t.Errorf("Hit error %q does not name the point", err)
	}
	// Without @N the point fires on every hit; other points never do.
	if err := s.Hit(pointA); !errors.Is(err, syscall.EIO) {
		t.Errorf("second Hit = %v, want syscall.EIO again", err)
	}
	if err := s.Hit(pointB); err != nil {
		t.Errorf("Hit of a point without a rule = %v", err)
	}
}

func TestHit_ENOSPCMatchesErrnoAndErrInjected(t *testing.T) {
	s, _ := mustParse(t, "faulttest.a:enospc")
	err := s.Hit(pointA)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, fault.ErrInjected) {
		t.Errorf("Hit = %v, want syscall.ENOSPC and fault.ErrInjected", err)
	}
}

func TestHit_NthFiresOnlyOnThatHit(t *testing.T) {
	s, crashes := mustParse(t, "faulttest.a:eio@2,faulttest.b:crash@3")
	var got []bool
	for range 4 {
		got = append(got, s.Hit(pointA) != nil)
	}
	if want := []bool{false, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("eio@2 fired on hits %v, want %v", got, want)
	}
	for i := 1; i <= 4; i++ {
		s.Hit(pointB)
		if want := i >= 3; (len(*crashes) > 0) != want {
			t.Errorf("after hit %d of crash@3: crashes %v", i, *crashes)
		}
	}
	if len(*crashes) != 1 {
		t.Errorf("crash@3 crashed %d times, want once", len(*crashes))
	}
	if h := s.Hits(); h[pointA] != 4 || h[pointB] != 4 || h[pointC] != 0 {
		t.Errorf("Hits = %v, want %s: 4, %s: 4", h, pointA, pointB)
	}
}

func TestHit_NthFiresOnceUnderConcurrentHits(t *testing.T) {
	s, _ := mustParse(t, "faulttest.c:eio@25")
	var wg sync.WaitGroup
	var mu sync.Mutex
	fired := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Hit(pointC) != nil {
				mu.Lock()
				fired++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fired != 1 {
		t.Errorf("eio@25 fired %d times over 50 concurrent hits, want 1", fired)
	}
	if h := s.Hits()[pointC]; h != 50 {
		t.Errorf("Hits = %d, want 50", h)
	}
}

func TestSetCrash_ReplacesCrashAndHitReturnsInjected(t *testing.T) {
	s, err := fault.Parse("faulttest.a:crash")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if ret := s.SetCrash(func(point string) { got = append(got, point) }); ret != s {
		t.Error("SetCrash does not return its Set")
	}
	err = s.Hit(pointA)
	if !slices.Equal(got, []string{pointA}) {
		t.Errorf("crash function called with %v, want [%s]", got, pointA)
	}
	// A crash function that returns lets the caller go on: Hit reports
	// the crash as an injected error so the operation does not proceed.
	if !errors.Is(err, fault.ErrInjected) {
		t.Errorf("Hit after a returning crash function = %v, want ErrInjected", err)
	}
	// A later SetCrash replaces the earlier one.
	var second int
	s.SetCrash(func(string) { second++ })
	s.Hit(pointA)
	if len(got) != 1 || second != 1 {
		t.Errorf("after a second SetCrash: first called %d times, second %d; want 1, 1", len(got), second)
	}
}

func TestSetCrash_PanickingCrashStopsTheCaller(t *testing.T) {
	// Tests stop a run at a crash point by panicking from the crash
	// function; the panic must reach the caller with the point.
	s, err := fault.Parse("faulttest.b:crash")
	if err != nil {
		t.Fatal(err)
	}
	s.SetCrash(func(point string) { panic("crash at " + point) })
	defer func() {
		if r := recover(); r != "crash at "+pointB {
			t.Errorf("recovered %v, want the crash panic", r)
		}
	}()
	s.Hit(pointB)
	t.Error("Hit returned after a panicking crash function")
}

func TestHit_DelaySleepsAndReturnsNil(t *testing.T) {
	s, _ := mustParse(t, "faulttest.a:delay=5ms")
	start := time.Now()
	if err := s.Hit(pointA); err != nil {
		t.Errorf("Hit with delay = %v, want nil", err)
	}
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("Hit with delay=5ms returned after %s", d)
	}
}

func TestNilSet_InjectsNothing(t *testing.T) {
	var s *fault.Set
	if err := s.Hit(pointA); err != nil {
		t.Errorf("nil Set Hit = %v, want nil", err)
	}
	// A nil Set does not even check the point is registered.
	if err := s.Hit("faulttest.never-registered"); err != nil {
		t.Errorf("nil Set Hit of an unknown point = %v, want nil", err)
	}
	if h := s.Hits(); h != nil {
		t.Errorf("nil Set Hits = %v, want nil", h)
	}
}

func TestHit_UnregisteredPointPanics(t *testing.T) {
	s, _ := mustParse(t, "faulttest.a:eio")
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "faulttest.unregistered") {
			t.Errorf("recovered %v, want a panic naming the point", r)
		}
	}()
	s.Hit("faulttest.unregistered")
	t.Error("Hit of an unregistered point returned")
}

func TestRegister_DuplicatePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("registering faulttest.a twice did not panic")
		}
	}()
	fault.Register(pointA, "again")
}

func TestPoints_SortedWithDescriptions(t *testing.T) {
	pts := fault.Points()
	if !slices.IsSortedFunc(pts, func(a, b fault.Point) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("Points not sorted: %v", pts)
	}
	i := slices.IndexFunc(pts, func(p fault.Point) bool { return p.Name == pointB })
	if i < 0 || pts[i].What != "test point b" {
		t.Errorf("Points lacks %s with its description: %v", pointB, pts)
	}
	names := fault.Names()
	if len(names) != len(pts) || !slices.IsSorted(names) || !slices.Contains(names, pointC) {
		t.Errorf("Names = %v", names)
	}
}

func TestFromEnv_ParsesEnvVar(t *testing.T) {
	t.Setenv(fault.EnvVar, "faulttest.c:enospc")
	s, err := fault.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Hit(pointC); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Hit = %v, want ENOSPC from %s", err, fault.EnvVar)
	}
	t.Setenv(fault.EnvVar, "faulttest.c:bogus")
	if _, err := fault.FromEnv(); !errors.Is(err, fault.ErrBadSpec) {
		t.Errorf("FromEnv with a bad spec = %v, want ErrBadSpec", err)
	}
}

func TestSetLog_LogsEachFiringAtInfoOnceThenDebug(t *testing.T) {
	var buf strings.Builder
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	s, _ := mustParse(t, "faulttest.a:delay=0s,faulttest.b:eio@2")
	s.SetLog(log)
	_ = s.Hit(pointC) // no rule: no line
	_ = s.Hit(pointB) // hit 1 of a rule for hit 2: no line
	_ = s.Hit(pointA)
	_ = s.Hit(pointA)
	_ = s.Hit(pointB)
	want := []string{
		`{"level":"info","point":"faulttest.a","hit":1,"action":"delay=0s","message":"fault point fired"}`,
		`{"level":"debug","point":"faulttest.a","hit":2,"action":"delay=0s","message":"fault point fired"}`,
		`{"level":"info","point":"faulttest.b","hit":2,"action":"eio@2","message":"fault point fired"}`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); !slices.Equal(got, want) {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var nilSet *fault.Set
	if nilSet.SetLog(log) != nil {
		t.Error("SetLog on the nil Set returned a Set")
	}
}
