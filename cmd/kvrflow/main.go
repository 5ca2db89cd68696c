package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the command rolls back; a second one ends the
	// process at once (exit 130, as a shell reports a Ctrl-C), and kvrflow
	// recover finishes what it left in flight.
	go func() {
		<-ctx.Done()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		stop()
		<-again
		fmt.Fprintln(os.Stderr, "Error: interrupted again: stopped at once; a run may be left in flight: 'kvrflow recover --db DIR' finishes it")
		os.Exit(exitSignal)
	}()
	os.Exit(run(ctx, os.Args[1:], &stdio{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// runner is one command's flags and action.
type runner interface {
	// flags registers the command's own flags on fs (Go's flag package;
	// cobra shows and parses them GNU-style through pflag).
	flags(fs *flag.FlagSet)
	// run does the command with the positional arguments. It returns the
	// document to print (nil if there is nothing to print) and its error;
	// on error the document holds whatever result exists.
	run(ctx context.Context, o *stdio, args []string) (document, error)
	// base returns the flags every command shares, for the global flags
	// to be copied in.
	base() *common
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
	journalCommands, []*command{quarantineListCommand, quarantinePurgeCommand, faultsCommand, chaosCommand},
	clusterCommands)

// globalFlags are the flags accepted before or after any command.
var globalFlags = []string{"json", "log-format", "log-level", "journal"}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, o *stdio) int {
	code := -1
	root := newRoot(ctx, o, &code)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if code >= 0 {
		return code
	}
	if err == nil {
		return exitOK // help, completion
	}
	o.logJSON = logFormatJSON(args)
	hint := "kvrflow --help"
	if cmd != nil && cmd != root {
		hint = cmd.CommandPath() + " --help"
	}
	return finish(o, jsonRequested(args), nil, asUsage(err), hint)
}

// newRoot builds the command tree: every command of commands under the
// root (or under its group, journal, quarantine), with the global flags
// persistent on the root.
func newRoot(ctx context.Context, o *stdio, code *int) *cobra.Command {
	var g common
	root := &cobra.Command{
		Use:               "kvrflow",
		Short:             "restore a database directory from a backup, atomically",
		Long:              rootAbout,
		Version:           versionLine(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		Args:              cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q", args[0])
			}
			cmd.SetOut(o.stderr)
			_ = cmd.Help()
			return errors.New("no command given")
		},
	}
	cobra.EnableCommandSorting = false
	root.Example = "  " + restoreCommand.example + "\n  kvrflow status --db /var/lib/app/db"
	root.Flags().Bool("version", false, "print kvrflow's version, VCS revision and Go version")
	root.SetOut(o.stdout)
	root.SetErr(o.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.BoolVar(&g.json, "json", false, "print one JSON document on stdout (logs stay on stderr)")
	pf.StringVar(&g.logFormat, "log-format", "console", "log `FORMAT` on stderr: console or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	pf.StringVar(&g.journal, "journal", "", "journal file `PATH` (default DIR.kvrflow/journal.db)")
	root.SetHelpTemplate(helpTemplate)
	root.SetUsageTemplate(usageTemplate)
	root.CompletionOptions.DisableDefaultCmd = true // ours checks its argument
	// --journal is global, so it parses everywhere; a command that has no
	// journal refuses it rather than ignore it.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.journal != "" && cmd.Annotations["journal"] != "yes" && cmd.HasParent() {
			return fmt.Errorf("--journal does not apply to %s", cmd.CommandPath())
		}
		return nil
	}

	groups := map[string]*cobra.Command{}
	for _, gname := range []string{"journal", "quarantine", "cluster"} {
		grp := &cobra.Command{
			Use:   gname,
			Short: groupSummary[gname],
			Long:  groupSummary[gname] + ".",
			Args:  cobra.ArbitraryArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("unknown command %q for %s", args[0], cmd.CommandPath())
				}
				cmd.SetOut(o.stderr)
				_ = cmd.Help()
				return fmt.Errorf("%s wants a subcommand: %s", gname, subNames(cmd))
			},
		}
		groups[gname] = grp
	}
	for _, c := range commands {
		parent, leaf := root, c.name
		if grp, rest, ok := strings.Cut(c.name, " "); ok {
			parent, leaf = groups[grp], rest
			if !parent.HasParent() {
				root.AddCommand(parent) // where its first subcommand stands
			}
		}
		parent.AddCommand(c.cobra(ctx, o, &g, leaf, code))
	}
	root.AddCommand(versionCommand(o, &g, code), completionCommand(o, root))
	return root
}

// completionCommand is kvrflow completion SHELL: the completion script for
// bash, zsh or fish on stdout; any other shell is a usage error.
func completionCommand(o *stdio, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "print the shell completion script for bash, zsh or fish",
		Long:      "Print the completion script for SHELL on stdout. Load it in the current shell with: source <(kvrflow completion bash); or install it where your shell reads completions.",
		Example:   "  source <(kvrflow completion bash)",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(_ *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(o.stdout, true)
			case "zsh":
				return root.GenZshCompletion(o.stdout)
			default:
				return root.GenFishCompletion(o.stdout, true)
			}
		},
	}
}

// groupSummary says what each command group is for.
var groupSummary = map[string]string{
	"journal":    "read, check, export and prune kvrflow's journal",
	"quarantine": "list and purge what kvrflow moved aside instead of deleting",
	"cluster":    "restore many nodes all-or-nothing, the decision kept in etcd",
}

// subNames lists a group's subcommands: "list, show, ...".
func subNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
	}
	return strings.Join(names, ", ")
}

// cobra returns the cobra command of c: its own flags (Go flags shown
// GNU-style), the global flags inherited from the root, and a RunE that
// prints the document and sets the exit code.
func (c *command) cobra(ctx context.Context, o *stdio, g *common, leaf string, code *int) *cobra.Command {
	r := c.new()
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	r.flags(fs)
	cmd := &cobra.Command{
		Use:     leaf + " " + c.args,
		Short:   c.summary,
		Long:    strings.TrimSpace(c.about),
		Example: "  " + c.example,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := r.base()
			b.json, b.logFormat, b.logLevel = g.json, g.logFormat, g.logLevel
			o.logJSON = g.logFormat == "json"
			b.journal = g.journal
			doc, err := r.run(ctx, o, args)
			*code = finish(o, g.json, doc, err, cmd.CommandPath()+" --help")
			return nil
		},
	}
	if r.base().takesJournal {
		cmd.Annotations = map[string]string{"journal": "yes"}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(globalFlags, f.Name) {
			return // the root's
		}
		cmd.Flags().AddGoFlag(f)
		if _, ok := f.Value.(keepOldFlag); ok {
			cmd.Flags().Lookup(f.Name).NoOptDefVal = "1" // --keep-old alone keeps one
		}
	})
	return cmd
}

// jsonRequested reports whether args hold --json (or --json=true) before
// any "--": a command line that did not parse still answers in JSON.
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

// logFormatJSON reports whether args ask for --log-format json.
func logFormatJSON(args []string) bool {
	for i, a := range args {
		if a == "--log-format=json" || a == "--log-format" && i+1 < len(args) && args[i+1] == "json" {
			return true
		}
	}
	return false
}

// rootAbout is kvrflow --help's description.
const rootAbout = `kvrflow restores a database directory from a backup so that, killed at any
instant, the directory holds the old database or the new one, complete, never
a mix. Every step is journaled in DIR.kvrflow/journal.db beside the database.`

// helpTemplate is every command's --help: usage, description, example,
// flags, and at the root the commands and exit codes.
const helpTemplate = `{{.UsageString}}`

// usageTemplate is the usage part of the help (also printed, to stderr,
// after a command line that does not parse).
const usageTemplate = `Usage: {{if and .Runnable (not .HasAvailableSubCommands)}}{{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}{{if and .Runnable (not .HasAvailableSubCommands)}}
       {{end}}{{.CommandPath}} COMMAND [flags]{{end}}{{with (or .Long .Short)}}

{{. | trimTrailingWhitespaces}}{{end}}{{if .HasExample}}

Example:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global flags (before or after the command):
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if not .HasParent}}

Environment:
  KVRFLOW_FAULT  fault spec for restore, undo, recover and quarantine purge
                 when --fault is not given (testing; see kvrflow faults)
  KVRFLOW_ETCD_PASSWORD  the etcd user's password for the cluster commands
                 (or --etcd-password-file; never a flag value)

` + exitCodeHelp + `{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for a command's flags and an example.{{end}}
`
