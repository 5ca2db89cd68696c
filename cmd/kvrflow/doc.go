// Command kvrflow restores a database directory from a backup so that, if
// it is killed at any instant, the directory holds either the old database
// or the new one, complete, and never a mix.
//
//	kvrflow backup  --db DIR --to OUT
//	kvrflow restore --from SRC --db DIR [--mode copy|link|auto] [--engine E] [--backup-id N] [--verify checksum|full|size] [--fault SPEC]
//	kvrflow recover --db DIR
//	kvrflow status  --db DIR
//	kvrflow journal list --db DIR | --journal PATH
//	kvrflow journal show RUN --db DIR | --journal PATH
//	kvrflow journal verify --db DIR | --journal PATH
//	kvrflow journal replay RUN --db DIR | --journal PATH
//	kvrflow journal export [--format json|ndjson|csv] [--run RUN] [--since TIME] --db DIR | --journal PATH
//	kvrflow journal graph [RUN] [--format mermaid|dot] [--db DIR | --journal PATH]
//	kvrflow journal report --html FILE [--recent N | --run RUN | --since TIME --until TIME] --db DIR | --journal PATH
//	kvrflow journal prune --keep N | --older-than DURATION --db DIR | --journal PATH
//	kvrflow faults
//	kvrflow chaos [--from BACKUP] [--dir SCRATCH] [--iterations N] [--seed S]
//
// Every command takes --json, --log-format console|json and --log-level;
// those that read the journal take --journal PATH (default
// DIR.kvrflow/journal.db). kvrflow --help lists the commands and the exit
// codes; kvrflow COMMAND --help shows a command's flags and an example.
//
// # Output
//
// Without --json a command prints its result for people on stdout. With
// --json it prints exactly one JSON object on stdout, always, success or
// failure; logs (zerolog, console or JSON lines) go to stderr either way.
// The object holds the command's result (see the *Doc types) and ends with
// "exit_code", the process's exit code, and, on failure, "error", the same
// message as the line "Error: <message>" on stderr. A failed command still
// reports whatever result exists, such as the run that was rolled back.
// journal export is the exception that writes its own formats: --json is
// --format json with "exit_code" added (the export schema lets consumers
// ignore fields they do not know); without --json it streams the export
// and reports errors on stderr only.
//
// # Exit codes
//
//	0  success, or nothing to do
//	1  the command failed; a failed restore was rolled back: DIR is as it was
//	2  usage error or bad input (flags, fault spec, backup, paths, space): nothing changed
//	3  DIR or its journal is in use by another process
//	4  the journal is unreadable or inconsistent, or DIR contradicts it: nothing done
//	5  a run is left in flight (its rollback, or a step after the commit
//	   point, kept failing); kvrflow recover finishes it
//
// exitCode in exitcodes.go is the mapping from errors to these codes.
//
// # Crash safety
//
// The command adds no state of its own: the library journals every step
// before acting and recovers runs in flight at the start of restore and
// recover. SIGINT and SIGTERM cancel the context; a run before its commit
// point then rolls back (exit 1), one past it finishes. A second signal
// ends the process at once, as kill -9 would, and kvrflow recover finishes
// the run. A fault spec (--fault or $KVRFLOW_FAULT, see kvrflow faults)
// triggers the library's named fault points; the tests use its crash
// action to SIGKILL real kvrflow processes mid-restore.
//
// # Caveats
//
// The database directory's parent must exist. With --mode auto (the
// default) or link, the restored database's tables are hard links to the
// backup's files when both are on one file system: Pebble never writes a
// table in place, but a tool that does would change the backup too. The
// journal records the source as an absolute path.
package main
