package main

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// watched is a kvrflow process whose log (stderr) the test reads line by
// line, to learn that it reached a state instead of sleeping and
// guessing.
type watched struct {
	cmd     *exec.Cmd
	stdout  *bytes.Buffer
	stderr  bytes.Buffer // complete once done is closed
	reached chan struct{}
	done    chan struct{}
}

// watch starts kvrflow with env and args; reached is closed at the first
// line of its log that matches wait.
func watch(t *testing.T, env []string, wait func(line string) bool, args ...string) *watched {
	t.Helper()
	cmd, stdout, _ := newCmd(env, args...)
	cmd.Stderr = nil
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watched{cmd: cmd, stdout: stdout, reached: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(pipe)
		seen := false
		for sc.Scan() {
			w.stderr.WriteString(sc.Text() + "\n")
			if !seen && wait(sc.Text()) {
				seen = true
				close(w.reached)
			}
		}
		_, _ = io.Copy(&w.stderr, pipe)
	}()
	return w
}

// await waits for the awaited line and reports whether it came. The test
// fails (and the process is killed) if the process ends, or 60 s pass,
// before it.
func (w *watched) await(t *testing.T) bool {
	t.Helper()
	select {
	case <-w.reached:
		return true
	case <-w.done:
		t.Errorf("kvrflow ended before the log line awaited")
	case <-time.After(60 * time.Second):
		_ = w.cmd.Process.Kill()
		t.Errorf("kvrflow did not log the line awaited within 60s")
	}
	return false
}

// end waits for the process and returns how it ended.
func (w *watched) end(t *testing.T) result {
	t.Helper()
	<-w.done // Wait must not run before the pipe is read to its end
	return ended(t, w.cmd, w.stdout, &w.stderr, w.cmd.Wait())
}

// logLine matches a log line holding msg.
func logLine(msg string) func(string) bool {
	return func(line string) bool { return strings.Contains(line, msg) }
}

// firedLine matches the log line of the n-th hit of point when its fault
// rule fires (package fault logs "fault point fired" with the point and
// the hit: at info level the rule's first firing, at debug level later
// ones).
func firedLine(point string, n int) func(string) bool {
	re := regexp.MustCompile(`fault point fired .*\bhit=` + strconv.Itoa(n) + `\b.*\bpoint=` + regexp.QuoteMeta(point) + `(\s|$)`)
	return re.MatchString
}
