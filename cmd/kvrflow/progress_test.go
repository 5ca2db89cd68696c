package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestProgress_DrawsBytesOnlyWhenOn(t *testing.T) {
	var on, off bytes.Buffer
	p := &progress{w: &on, on: true}
	p.update(512<<10, 1<<20, "bytes")
	p.update(1<<20, 1<<20, "bytes")
	if s := on.String(); !strings.Contains(s, "writing") || !strings.Contains(s, "100%") || !strings.Contains(s, "MiB") {
		t.Errorf("progress bar drew %q, want binary units", s)
	}
	var files bytes.Buffer
	pf := &progress{w: &files, on: true}
	pf.update(3, 9, "files")
	pf.update(9, 9, "files")
	if s := files.String(); !strings.Contains(s, "9/9") || strings.Contains(s, "B/s") || strings.Contains(s, "TB") {
		t.Errorf("link mode's bar drew %q, want files counted", s)
	}
	q := &progress{w: &off, on: false}
	q.update(1, 2, "bytes")
	if off.Len() != 0 {
		t.Errorf("progress off drew %q", off.String())
	}
}

// TestRestore_ProgressBarOnATerminalOnly runs restore under a pseudo
// terminal (script(1)): the bar is drawn; with output to a pipe it is not.
func TestRestore_ProgressBarOnATerminalOnly(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not found: cannot give restore a terminal")
	}
	f := newFixture(t, 100, 2000)
	line := kvrflowBin + " " + strings.Join(f.restoreArgs("--mode", "copy"), " ")
	out, err := exec.Command(script, "-qec", line, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("restore under a terminal: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "writing") {
		t.Errorf("no progress bar on a terminal:\n%s", out)
	}
	r := mustRun(t, exitOK, nil, f.restoreArgs("--mode", "copy")...)
	if strings.Contains(r.stderr, "writing") || strings.Contains(r.stdout, "writing") {
		t.Errorf("progress bar drawn into a pipe:\n%s", r.stderr)
	}
}

// TestHelp_OnATerminal: help reads the same on a terminal (script(1)) as
// through a pipe.
func TestHelp_OnATerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not found: cannot give kvrflow a terminal")
	}
	out, err := exec.Command(script, "-qec", kvrflowBin+" restore --help", "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("help under a terminal: %v\n%s", err, out)
	}
	piped := mustRun(t, exitOK, nil, "restore", "--help")
	if got := strings.ReplaceAll(string(out), "\r\n", "\n"); got != piped.stdout {
		t.Errorf("help on a terminal differs from help through a pipe:\n%s", got)
	}
}
