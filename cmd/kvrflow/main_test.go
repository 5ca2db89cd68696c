package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/check"
	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// kvrflowBin is the kvrflow binary built once by TestMain. The tests run
// it as a subprocess, as a user or a service manager would: exit codes,
// stdout and stderr are what they check, and a fault point's crash kills
// the subprocess, not the test.
var kvrflowBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvrflow-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kvrflowBin = filepath.Join(dir, "kvrflow")
	args := []string{"build", "-o", kvrflowBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build kvrflow: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	s3test.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is how one run of kvrflow ended.
type result struct {
	args           []string
	stdout, stderr string
	code           int            // exit code; -1 if killed by a signal
	signal         syscall.Signal // the signal that killed it, or 0
}

func (r result) String() string {
	return fmt.Sprintf("kvrflow %s: exit %d signal %v\nstdout:\n%s\nstderr:\n%s",
		strings.Join(r.args, " "), r.code, r.signal, r.stdout, r.stderr)
}

// newCmd returns an unstarted kvrflow command with env added to the
// test's environment, less any KVRFLOW_FAULT of the test's own.
func newCmd(env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(kvrflowBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, fault.EnvVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if raceEnabled && os.Getenv("GORACE") == "" {
		// The race runtime sleeps 1s at exit by default; a race found
		// still fails the run with exit code 66.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// ended returns the result of a finished command.
func ended(tb testing.TB, cmd *exec.Cmd, stdout, stderr *bytes.Buffer, err error) result {
	tb.Helper()
	r := result{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		tb.Fatalf("run kvrflow %s: %v", strings.Join(r.args, " "), err)
	}
	return r
}

// cli runs the kvrflow binary with args and env (NAME=VALUE) and returns how
// it ended.
func cli(tb testing.TB, env []string, args ...string) result {
	tb.Helper()
	cmd, stdout, stderr := newCmd(env, args...)
	return ended(tb, cmd, stdout, stderr, cmd.Run())
}

// mustRun runs kvrflow and fails the test unless it exits with want.
func mustRun(tb testing.TB, want int, env []string, args ...string) result {
	tb.Helper()
	r := cli(tb, env, args...)
	if r.code != want || r.signal != 0 {
		tb.Fatalf("want exit %d, got %s", want, r)
	}
	return r
}

// decode parses stdout as exactly one JSON document into v.
func decode(tb testing.TB, r result, v any) {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("stdout is not the JSON document expected: %v\n%s", err, r)
	}
	if dec.More() {
		tb.Fatalf("stdout holds more than one JSON document\n%s", r)
	}
}

// fixture is, in a temporary directory, an old database at node/db and a
// backup of another database at backup.
type fixture struct {
	root, db, backup string
	old, new         map[string]string
}

// newFixture makes a fixture whose old database has oldKeys keys and
// whose backup, made with kvrflow backup, has newKeys. Its cleanup checks
// the journal (see checkJournal).
func newFixture(tb testing.TB, oldKeys, newKeys int) *fixture {
	tb.Helper()
	root := tb.TempDir()
	f := &fixture{root: root, db: filepath.Join(root, "node", "db"), backup: filepath.Join(root, "backup")}
	src := filepath.Join(root, "src")
	f.new = testutil.MakeDB(tb, vfs.Default, src, 2, newKeys)
	mustRun(tb, exitOK, nil, "backup", "--db", src, "--to", f.backup)
	if err := os.RemoveAll(src); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(f.db), 0o755); err != nil {
		tb.Fatal(err)
	}
	if oldKeys > 0 {
		f.old = testutil.MakeDB(tb, vfs.Default, f.db, 1, oldKeys)
	}
	tb.Cleanup(func() { checkJournal(tb, f.db) })
	return f
}

// restoreArgs returns the arguments of a restore of the fixture.
func (f *fixture) restoreArgs(extra ...string) []string {
	return append([]string{"restore", "--from", f.backup, "--db", f.db}, extra...)
}

// readDB returns the database's contents, failing the test if it does not
// open.
func (f *fixture) readDB(tb testing.TB) map[string]string {
	tb.Helper()
	return testutil.ReadDB(tb, vfs.Default, f.db)
}

// target is the check target of the fixture: DB holds the old database
// (none if the fixture has no old database) or the backup's, key by key.
func (f *fixture) target() check.Target {
	return check.Target{DB: f.db, Old: check.Database{Keys: f.old, Absent: f.old == nil}, New: check.Database{Keys: f.new}}
}

// which says whether the database holds the old contents or the backup's,
// key by key: "old" or "new" (check.Old, check.New); it fails the test
// if neither (see check.Target.Which).
func (f *fixture) which(tb testing.TB) string {
	tb.Helper()
	got, err := f.target().Which()
	if err != nil {
		tb.Fatal(err)
	}
	return string(got)
}

// checkJournal checks, if DB has a journal, that nothing is in flight and
// that every run's events form a chain (see check.Journal).
func checkJournal(tb testing.TB, db string) {
	tb.Helper()
	layout, err := steps.NewLayout(db)
	if err != nil {
		tb.Fatal(err)
	}
	if fi, err := os.Stat(layout.Journal()); err != nil || !fi.Mode().IsRegular() {
		return // no journal (or DB.kvrflow is not a directory): nothing to check
	}
	if err := check.Journal(layout.Journal()); err != nil {
		tb.Errorf("journal check: %v", err)
	}
}

func TestHelp_ListsCommandsAndExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		r := mustRun(t, exitOK, nil, args...)
		for _, c := range commands {
			top, _, _ := strings.Cut(c.name, " ")
			if !strings.Contains(r.stdout, "\n  "+top+" ") {
				t.Errorf("kvrflow %s does not list %q:\n%s", args[0], top, r.stdout)
			}
		}
		for _, want := range []string{"  version ", "  completion ", "--json", "--log-format"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("kvrflow %s does not show %q:\n%s", args[0], want, r.stdout)
			}
		}
		for code := exitOK; code <= exitInFlight; code++ {
			if !strings.Contains(r.stdout, fmt.Sprintf("\n  %d  ", code)) {
				t.Errorf("kvrflow %s does not document exit code %d:\n%s", args[0], code, r.stdout)
			}
		}
	}
}

func TestHelp_EveryCommandShowsAnExample(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			args := append(strings.Fields(c.name), "--help")
			r := mustRun(t, exitOK, nil, args...)
			if !strings.Contains(r.stdout, "Example:\n  kvrflow ") && !strings.Contains(r.stdout, "Example:\n  KVRFLOW_FAULT=") {
				t.Errorf("no example:\n%s", r.stdout)
			}
			if !strings.HasPrefix(r.stdout, "Usage: kvrflow "+c.name) || !strings.Contains(r.stdout, "--json") {
				t.Errorf("help does not start with the usage or lacks the flags:\n%s", r.stdout)
			}
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Count(line, "(default") > 1 {
					t.Errorf("a default shown twice: %s", line)
				}
			}
			if h := mustRun(t, exitOK, nil, append([]string{"help"}, strings.Fields(c.name)...)...); h.stdout != r.stdout {
				t.Errorf("kvrflow help %s differs from kvrflow %s --help", c.name, c.name)
			}
		})
	}
	if r := mustRun(t, exitOK, nil, "journal", "--help"); !strings.Contains(r.stdout, "  show ") {
		t.Errorf("kvrflow journal --help:\n%s", r.stdout)
	}
}

func TestUsage_BadCommandLinesExit2WithOneErrorLine(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"journal"},
		{"journal", "frob"},
		{"faults", "extra"},
		{"status"},
		{"backup", "--db", "x"},
		{"status", "--db", "x", "--log-level", "loud"},
		{"status", "--db", "x", "--log-format", "xml"},
	} {
		r := mustRun(t, exitUsage, nil, args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Error: ") {
			t.Errorf("kvrflow %q: stderr does not end with one Error: line:\n%s", args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("kvrflow %q printed on stdout:\n%s", args, r.stdout)
		}
	}
}
