package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/steps"
)

// stdio is where a command writes, and what it knows of its terminal.
type stdio struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	logJSON        bool // --log-format json: the final error is a JSON line too
}

// logTimeFormat is the time of a JSON log line: RFC 3339 with
// milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// stderrIsTerminal reports whether stderr is a terminal: only then does a
// command draw a progress bar or colour its logs.
func (o *stdio) stderrIsTerminal() bool {
	f, ok := o.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// common holds the flags every command shares: the global flags, given
// before or after the command (the root's persistent flags, copied in
// before the command runs).
type common struct {
	json      bool
	logFormat string
	logLevel  string
	journal   string // only for commands that read or write the journal
	// takesJournal: the command reads or writes a journal, so --journal
	// applies to it (elsewhere it is a usage error, not ignored).
	takesJournal bool
}

// define says whether the command takes --journal. (The global flags are
// the root's; a command's own flags are registered by its flags method.)
func (c *common) define(_ *flag.FlagSet, withJournal bool) { c.takesJournal = withJournal }

func (c *common) base() *common { return c }

// logger returns the logger the flags ask for, writing to o.stderr.
func (c *common) logger(o *stdio) (*zerolog.Logger, error) {
	return c.loggerTo(o.stderr, o.stderrIsTerminal())
}

// loggerTo returns the logger the flags ask for, writing to w (stderr, or
// a progress bar's writer in front of it); colour is for a terminal.
func (c *common) loggerTo(w io.Writer, colour bool) (*zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.logLevel)
	if err != nil || c.logLevel == "" {
		return nil, usagef("bad --log-level %q: want debug, info, warn or error", c.logLevel)
	}
	zerolog.TimeFieldFormat = logTimeFormat
	switch c.logFormat {
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !colour}
	case "json":
	default:
		return nil, usagef("bad --log-format %q: want console or json", c.logFormat)
	}
	l := zerolog.New(w).Level(level).With().Timestamp().Logger()
	return &l, nil
}

// faultsAndLogger returns the fault set of --fault (else $KVRFLOW_FAULT),
// checked, and the logger the flags ask for; done, deferred by the
// command, reports the rules of the spec that never fired.
func (c *common) faultsAndLogger(o *stdio, flagValue string) (faults *fault.Set, log *zerolog.Logger, done func(), err error) {
	spec, err := faultSpec(flagValue, o)
	if err != nil {
		return nil, nil, nil, err
	}
	if log, err = c.logger(o); err != nil {
		return nil, nil, nil, err
	}
	faults, _ = fault.Parse(spec) // checked by faultSpec
	return faults, log, func() { reportUnfired(spec, faults, log) }, nil
}

// reportUnfired logs, at the end of a command, the rules of its fault
// spec that never fired.
func reportUnfired(spec string, set *fault.Set, log *zerolog.Logger) {
	for _, r := range set.Unfired() {
		log.Warn().Str("spec", spec).Str("rule", r).Msg("fault spec: this rule never fired")
	}
}

// faultSpec returns the fault spec of --fault, else of $KVRFLOW_FAULT,
// checked: a bad spec is a usage error (it matches fault.ErrBadSpec).
func faultSpec(flagValue string, o *stdio) (string, error) {
	spec := flagValue
	if spec == "" {
		spec = o.getenv(fault.EnvVar)
	}
	if _, err := fault.Parse(spec); err != nil {
		return "", err
	}
	return spec, nil
}

// need returns a usage error naming the first flag whose value is empty.
func need(flags ...string) error {
	for i := 0; i+1 < len(flags); i += 2 {
		if flags[i+1] == "" {
			return usagef("%s is required", flags[i])
		}
	}
	return nil
}

// usagef returns a usage error (exit code 2).
func usagef(format string, args ...any) error { return asUsage(fmt.Errorf(format, args...)) }

// document is what a command prints: as text for a person, or, with
// --json, as exactly one JSON object on stdout. On error the object holds
// "error" and "exit_code" beside whatever result exists.
type document interface {
	text(w io.Writer)
	setExit(msg string, code int)
}

// exitReport ends every JSON document. ExitCode is always present; Error
// only when the command failed.
type exitReport struct {
	Error    string `json:"error,omitempty"`
	ExitCode int    `json:"exit_code"`
}

func (r *exitReport) setExit(msg string, code int) { r.Error, r.ExitCode = msg, code }

// errorDoc is the document of a command that failed before it had any
// result.
type errorDoc struct{ exitReport }

func (*errorDoc) text(io.Writer) {}

// finish prints doc and err as the flags ask and returns the exit code.
// The error goes to stderr as one line, "Error: <message>", with or
// without --json; with --json stdout also gets the document, error and
// exit code included. doc may be nil.
func finish(o *stdio, jsonOut bool, doc document, err error, usageHint string) int {
	code := exitCode(err)
	msg := ""
	if err != nil {
		msg = oneLine(err.Error())
		if errors.Is(err, errUsage) && usageHint != "" {
			msg += " (see " + usageHint + ")"
		}
		if o.logJSON {
			// --log-format json: every line on stderr is JSON, this one too.
			l := zerolog.New(o.stderr).With().Timestamp().Logger()
			l.Error().Int("exit_code", code).Msg(msg)
		} else {
			fmt.Fprintf(o.stderr, "Error: %s\n", msg)
		}
	}
	if doc == nil {
		if !jsonOut {
			return code
		}
		doc = &errorDoc{}
	}
	doc.setExit(msg, code)
	if !jsonOut {
		doc.text(o.stdout)
		return code
	}
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a graph's --> stays readable
	if werr := enc.Encode(doc); werr != nil {
		fmt.Fprintf(o.stderr, "Error: write JSON: %s\n", werr)
		if code == exitOK {
			code = exitInFlight
		}
	}
	return code
}

// oneLine joins the lines of a multi-line message (errors.Join makes
// them) so the error stays one line on stderr.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// humanBytes formats n bytes for people: 1.5 MiB.
func humanBytes(n int64) string { return steps.HumanBytes(n) }

// timeText formats a journal time for people, in UTC like the journal.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// orDash returns s, or "-" when s is empty, for table cells.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// durationFlag is a duration flag that also takes days and weeks (30d,
// 2w, 1w2d) beside Go's units (12h, 90m, 1h30m).
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseDuration parses Go's durations and the units d (24h) and w (7d).
func parseDuration(s string) (time.Duration, error) {
	// (pflag names the flag and the value: the error says what is wanted.)
	bad := errors.New("want a number and a unit, w (weeks), d (days), h, m or s, e.g. 30d, 2w, 12h, 1h30m")
	if s == "" {
		return 0, bad
	}
	rest, total := s, time.Duration(0)
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, bad
		}
		unit := rest[i]
		if unit != 'd' && unit != 'w' {
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, bad
			}
			return total + d, nil
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad
		}
		day := 24 * time.Hour
		if unit == 'w' {
			day *= 7
		}
		total += time.Duration(n * float64(day))
		rest = rest[i+1:]
	}
	if total < 0 {
		return 0, bad
	}
	return total, nil
}

// absPath makes a path given on the command line absolute, for documents
// that name it.
func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", usagef("%s: %v", p, err)
	}
	return a, nil
}

// plural says n things: "1 problem", "3 problems".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// absOr returns p made absolute (as documents name paths), or p itself if
// that fails.
func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// optInt is an int flag with no default shown: -1 until it is given.
type optInt struct{ n *int }

func (f optInt) String() string {
	if f.n == nil || *f.n < 0 {
		return ""
	}
	return strconv.Itoa(*f.n)
}

func (f optInt) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	*f.n = v
	return nil
}
