package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: a second
	// Ctrl-C ends the process at once, and kvrflow recover finishes what
	// it left in flight.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(run(ctx, os.Args[1:], &stdio{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// runner is one command's flags and action.
type runner interface {
	// flags registers the command's flags on fs.
	flags(fs *flag.FlagSet)
	// run does the command with the positional arguments. It returns the
	// document to print (nil if there is nothing to print) and its error;
	// on error the document holds whatever result exists.
	run(ctx context.Context, o *stdio, args []string) (document, error)
	// jsonOutput reports whether --json was given.
	jsonOutput() bool
}

// command describes a subcommand for dispatch and help.
type command struct {
	name    string // as typed: "restore", "journal show"
	args    string // synopsis after the name
	summary string // one line in kvrflow --help
	about   string // what kvrflow NAME --help explains
	example string // one command line
	new     func() runner
}

// commands lists every subcommand in the order kvrflow --help shows them.
var commands = slices.Concat([]*command{backupCommand, restoreCommand, undoCommand, recoverCommand, statusCommand},
	journalCommands, []*command{faultsCommand, chaosCommand})

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, o *stdio) int {
	if len(args) == 0 {
		usage(o.stderr)
		return finish(o, false, nil, usagef("no command given"), "kvrflow --help")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(rest) > 0 {
			return run(ctx, append(append([]string{}, rest...), "--help"), o)
		}
		usage(o.stdout)
		return exitOK
	case "journal":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if len(rest) > 0 && isHelp(rest[0]) {
				journalUsage(o.stdout)
				return exitOK
			}
			journalUsage(o.stderr)
			return finish(o, false, nil, usagef("journal wants a subcommand: %s", journalNames()), "kvrflow journal --help")
		}
		name, rest = "journal "+rest[0], rest[1:]
	}
	c := lookup(name)
	if c == nil {
		return finish(o, jsonRequested(rest), nil, usagef("unknown command %q", name), "kvrflow --help")
	}
	return c.exec(ctx, o, rest)
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// exec parses the command's flags and runs it.
func (c *command) exec(ctx context.Context, o *stdio, args []string) int {
	r := c.new()
	fs := flag.NewFlagSet("kvrflow "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // finish prints the error, as one line
	r.flags(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(o.stdout, fs)
		return exitOK
	}
	var doc document
	jsonOut := r.jsonOutput()
	if err != nil {
		// Parsing stops at the bad flag; --json after it still counts.
		err, jsonOut = asUsage(err), jsonOut || jsonRequested(args)
	} else {
		doc, err = r.run(ctx, o, pos)
	}
	return finish(o, jsonOut, doc, err, "kvrflow "+c.name+" --help")
}

// jsonRequested reports whether args hold --json (or -json, --json=true)
// before any "--".
func jsonRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "json" {
			on, err := strconv.ParseBool(value)
			return !hasValue || (err == nil && on)
		}
	}
	return false
}

// usage prints the command's help: synopsis, what it does, an example and
// its flags.
func (c *command) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: kvrflow %s %s\n\n%s\n\nExample:\n  %s\n\nFlags:\n", c.name, c.args, strings.TrimSpace(c.about), c.example)
	printFlags(w, fs)
}

// printFlags prints fs's flags GNU-style (--name VALUE), which is how the
// help and the examples spell them; flag accepts -name too.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		value, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if value != "" {
			line += " " + value
		}
		if f.DefValue != "" && f.DefValue != "false" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, text)
	})
}

// usage prints kvrflow's top-level help.
func usage(w io.Writer) {
	fmt.Fprint(w, `kvrflow restores a database directory from a backup so that, killed at any
instant, the directory holds the old database or the new one, complete, never
a mix. Every step is journaled in DIR.kvrflow/journal.db beside the database.

Usage:
  kvrflow COMMAND [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run 'kvrflow COMMAND --help' for a command's flags and an example.

Example:
  %s

Environment:
  %s  fault spec for restore and recover when --fault is not given
                 (testing; see kvrflow faults)

%s
`, restoreCommand.example, "KVRFLOW_FAULT", exitCodeHelp)
}

// journalUsage prints the help of the journal command group.
func journalUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: kvrflow journal %s [flags]\n\n", strings.ReplaceAll(journalNames(), ", ", "|"))
	fmt.Fprint(w, "Read, check and export kvrflow's journal (opened read-only; prune writes it).\n\nCommands:\n")
	for _, c := range journalCommands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nExample:\n  %s\n  %s\n", journalShowCommand.example, journalVerifyCommand.example)
}

// journalNames lists the journal subcommands: "list, show, verify, ...".
func journalNames() string {
	var names []string
	for _, c := range journalCommands {
		names = append(names, strings.TrimPrefix(c.name, "journal "))
	}
	return strings.Join(names, ", ")
}
