package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/kvrflow/kvrflow/internal/fault"
)

var update = flag.Bool("update", false, "rewrite docs/cli from the commands")

// TestDocs_AreCurrent: docs/cli holds the Markdown of every command,
// generated from the commands themselves; CI fails when it is stale.
// Regenerate with: go test ./cmd/kvrflow -run TestDocs_AreCurrent -update
func TestDocs_AreCurrent(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "cli")
	gen := t.TempDir()
	code := -1
	root := newRoot(context.Background(), &stdio{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, &code)
	must(t, doc.GenMarkdownTree(root, gen))
	if *update {
		must(t, os.RemoveAll(dir))
		must(t, os.CopyFS(dir, os.DirFS(gen)))
		return
	}
	want, err := os.ReadDir(gen)
	must(t, err)
	for _, e := range want {
		g, err := os.ReadFile(filepath.Join(gen, e.Name()))
		must(t, err)
		have, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || string(have) != string(g) {
			t.Errorf("docs/cli/%s is stale (regenerate: go test ./cmd/kvrflow -run TestDocs_AreCurrent -update)", e.Name())
		}
	}
	have, _ := os.ReadDir(dir)
	if len(have) != len(want) {
		t.Errorf("docs/cli has %d files, the commands make %d", len(have), len(want))
	}
}

// TestVersion_PrintsTheBuild: --version and version print the module
// version and the Go version; --json gives them as a document.
func TestVersion_PrintsTheBuild(t *testing.T) {
	a := mustRun(t, exitOK, nil, "--version")
	b := mustRun(t, exitOK, nil, "version")
	if a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "kvrflow ") || !strings.Contains(a.stdout, "go1.") {
		t.Fatalf("--version %q, version %q", a.stdout, b.stdout)
	}
	var doc struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Revision string `json:"revision"`
		Time     string `json:"time"`
		Modified bool   `json:"modified"`
		Go       string `json:"go"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, mustRun(t, exitOK, nil, "version", "--json"), &doc)
	if doc.Module != "github.com/kvrflow/kvrflow" || doc.Version == "" || !strings.HasPrefix(doc.Go, "go1.") {
		t.Fatalf("version --json = %+v", doc)
	}
}

// TestCompletion_ForEveryShell: completion scripts for bash, zsh and fish.
func TestCompletion_ForEveryShell(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "complete -o default", "zsh": "#compdef kvrflow", "fish": "complete -c kvrflow"} {
		r := mustRun(t, exitOK, nil, "completion", shell)
		if !strings.Contains(r.stdout, marker) {
			t.Errorf("completion %s lacks %q", shell, marker)
		}
	}
}

// TestGlobalFlags_BeforeOrAfterTheCommand: --json and the log flags work
// before the command as after it; --journal is refused where it does not
// apply.
func TestGlobalFlags_BeforeOrAfterTheCommand(t *testing.T) {
	f := newFixture(t, 10, 10)
	a := mustRun(t, exitOK, nil, "--json", "status", "--db", f.db)
	b := mustRun(t, exitOK, nil, "status", "--db", f.db, "--json")
	if !strings.HasPrefix(a.stdout, "{") || a.stdout != b.stdout {
		t.Fatalf("--json before the command: %q; after: %q", a.stdout, b.stdout)
	}
	mustRun(t, exitUsage, nil, "--log-level", "loud", "status", "--db", f.db)
	r := mustRun(t, exitUsage, nil, "--journal", "x.db", "faults")
	if !strings.Contains(r.stderr, "--journal does not apply") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = mustRun(t, exitUsage, nil, "restore", "--backup-idd", "3")
	if !strings.Contains(r.stderr, "--backup-idd") || strings.Contains(r.stderr, " -backup-idd") {
		t.Errorf("the error does not spell the flag as typed: %s", r.stderr)
	}
}

// TestDurations_TakeDaysAndWeeks: 30d, 2w, 1w2d parse; a bad one says
// what is expected.
func TestDurations_TakeDaysAndWeeks(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1w2d": 9 * 24 * time.Hour,
		"12h": 12 * time.Hour, "1h30m": 90 * time.Minute, "2w12h": 14*24*time.Hour + 12*time.Hour} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "3", "3x", "-2d", "1d2"} {
		if _, err := parseDuration(in); err == nil || !strings.Contains(err.Error(), "e.g. 30d") {
			t.Errorf("parseDuration(%q) = %v, want an error saying what is expected", in, err)
		}
	}
	f := newFixture(t, 10, 10)
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	r := mustRun(t, exitUsage, nil, "journal", "prune", "--db", f.db, "--keep", "0")
	if !strings.Contains(r.stderr, "--keep 0 would remove every ended run") {
		t.Errorf("prune --keep 0: %s", r.stderr)
	}
	mustRun(t, exitOK, nil, "journal", "prune", "--db", f.db, "--older-than", "30d")
}

// TestQuarantine_ListAndPurge: quarantine list shows what was moved
// aside; purge removes only entries older than the age, with --yes, as a
// journaled run naming what it removed and who.
func TestQuarantine_ListAndPurge(t *testing.T) {
	f := newFixture(t, 10, 10)
	must(t, os.MkdirAll(f.db+".tmp", 0o755))
	must(t, os.WriteFile(filepath.Join(f.db+".tmp", "x"), []byte("old"), 0o644))
	mustRun(t, exitOK, nil, f.restoreArgs()...) // quarantines db.tmp
	l := mustRun(t, exitOK, nil, "quarantine", "list", "--db", f.db)
	if !strings.Contains(l.stdout, "run1-db.tmp") {
		t.Fatalf("quarantine list:\n%s", l.stdout)
	}
	mustRun(t, exitUsage, nil, "quarantine", "purge", "--db", f.db, "--older-than", "1d")
	p := mustRun(t, exitOK, nil, "quarantine", "purge", "--db", f.db, "--older-than", "1d", "--yes")
	if !strings.Contains(p.stdout, "nothing in quarantine old enough") {
		t.Fatalf("purge of a fresh entry:\n%s", p.stdout)
	}
	// The entry was moved in (its ctime) an instant ago: older than 1ns.
	p = mustRun(t, exitOK, nil, "quarantine", "purge", "--db", f.db, "--older-than", "1ns", "--yes")
	if !strings.Contains(p.stdout, "removed "+f.db+".kvrflow/quarantine/run1-db.tmp") {
		t.Fatalf("purge:\n%s", p.stdout)
	}
	show := mustRun(t, exitOK, nil, "journal", "show", "3", "--db", f.db)
	if !strings.Contains(show.stdout, "run1-db.tmp") || !strings.Contains(show.stdout, "uid ") {
		t.Fatalf("the purge run does not journal what it removed and who:\n%s", show.stdout)
	}
}

// TestQuarantine_PurgeKilledIsFinishedByRecover: a purge killed after it
// journaled its list is finished by recover, removing that list and no
// more.
func TestQuarantine_PurgeKilledIsFinishedByRecover(t *testing.T) {
	f := newFixture(t, 10, 10)
	must(t, os.MkdirAll(f.db+".tmp", 0o755))
	mustRun(t, exitOK, nil, f.restoreArgs()...)
	r := cli(t, []string{fault.EnvVar + "=fs.before-remove:crash"}, "quarantine", "purge", "--db", f.db, "--older-than", "1ns", "--yes")
	if r.signal != syscall.SIGKILL {
		t.Fatalf("purge was not killed: %s", r)
	}
	rec := mustRun(t, exitOK, nil, "recover", "--db", f.db)
	if !strings.Contains(rec.stdout, "purge") || !strings.Contains(rec.stdout, "committed") {
		t.Fatalf("recover:\n%s", rec.stdout)
	}
	if entries, _ := os.ReadDir(f.db + ".kvrflow/quarantine"); len(entries) != 0 {
		t.Fatalf("quarantine still holds %v", entries)
	}
}
