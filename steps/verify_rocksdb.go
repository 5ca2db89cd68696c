package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LdbTimeout bounds one ldb run of Verify.
var LdbTimeout = 10 * time.Minute

// SSTDumpTimeout and SSTDumpRate bound the sst_dump run of Verify at
// VerifyFull: it may take SSTDumpTimeout plus one second for every
// SSTDumpRate bytes of tables (a slower read than that is taken for a hung
// tool). The run's context also ends it.
var (
	SSTDumpTimeout       = 10 * time.Minute
	SSTDumpRate    int64 = 16 << 20
)

// CheckSSTDump returns an ErrBadOption error when verify asks for
// VerifyFull of a source of the given engine and that check needs a tool
// that is not on PATH: for RocksDB, sst_dump, which reads every block of
// every table (see verifyTables). Without it the check would silently not
// run. Precheck and kvrflow.Restore call it before anything changes.
func CheckSSTDump(engine, verify string) error {
	if level, _ := ParseVerify(verify); level != VerifyFull || engine != EngineRocksDB {
		return nil
	}
	_, err := lookSSTDump()
	return err
}

// lookSSTDump returns the path of sst_dump, or CheckSSTDump's error.
func lookSSTDump() (string, error) {
	p, err := exec.LookPath("sst_dump")
	if err != nil {
		return "", fmt.Errorf("%w: --verify full of a RocksDB source needs sst_dump on PATH (Debian package rocksdb-tools)", ErrBadOption)
	}
	return p, nil
}

// checkRocksDB checks a staged RocksDB database: its structure (CURRENT
// names a MANIFEST that exists; Write already compared every file's size
// and crc32c with the source's), then, when staging is on the real disk:
// at VerifyFull, every block of every table with sst_dump (verifyTables);
// and, when ldb is on PATH, `ldb --db=STAGING checkconsistency`, which
// opens the database read-only and checks that every file the MANIFEST
// lists is there at its size. It returns a description of the checks that
// ran. The ldb check runs at every verification level: it is RocksDB's
// open check, and costs one short ldb process.
func (e *Env) checkRocksDB(ctx context.Context, staging string) (string, error) {
	current := filepath.Join(staging, "CURRENT")
	f, err := e.FS.Open(current)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s: no CURRENT file", ErrVerify, staging)
	}
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	f.Close()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", current, err)
	}
	name := strings.TrimSuffix(string(b), "\n")
	if !strings.HasPrefix(name, "MANIFEST-") || strings.ContainsAny(name, "/\n\x00") {
		return "", fmt.Errorf("%w: %s: CURRENT holds %q, not a MANIFEST name", ErrVerify, current, b)
	}
	if ok, err := e.FS.Exists(filepath.Join(staging, name)); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("%w: %s: CURRENT names %s, which is missing", ErrVerify, staging, name)
	}
	check := "structure (CURRENT names an existing MANIFEST)"
	if !e.FS.IsDisk() {
		return check + "; ldb and sst_dump skipped: staging is not on the real disk", nil
	}
	if e.verifyLevel() == VerifyFull {
		// Before ldb: a table whose index or properties block is corrupt
		// fails ldb's open too, but only sst_dump names it as the
		// backup's corrupt table.
		n, err := e.verifyTables(ctx, staging)
		if err != nil {
			return "", err
		}
		check += fmt.Sprintf("; sst_dump verify of %d tables OK", n)
	} else {
		check += "; sst_dump verify of every block runs with --verify full"
	}
	ldb, err := exec.LookPath("ldb")
	if err != nil {
		e.Log.Warn().Msg("ldb not on PATH: the staged RocksDB database is not opened by RocksDB")
		return check + "; ldb not on PATH: checkconsistency skipped", nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LdbTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, ldb, "--db="+staging, "checkconsistency")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.Join(strings.Fields(out.String()), " ")
		return "", fmt.Errorf("%w: ldb --db=%s checkconsistency: %w: %s", ErrVerify, staging, err, msg)
	}
	return check + "; ldb checkconsistency OK", nil
}

// verifyTables runs `sst_dump --file=STAGING --command=verify
// --verify_checksum`, which reads every block of every .sst file in
// staging and checks its checksum, and returns how many tables it
// checked. sst_dump (RocksDB 7.8) exits 0 even when it finds a corrupt
// table, and without --verify_checksum its verify command checks nothing;
// so a table passes only when sst_dump printed "The file is ok" for it and
// nothing on stderr (see parseSSTDumpVerify). A table sst_dump reports
// corrupt is ErrBadSource (its bytes are the source's: Write compared
// them), naming the source's file; any other failure, including the
// timeout, is ErrVerify.
func (e *Env) verifyTables(ctx context.Context, staging string) (int, error) {
	staging = filepath.Clean(staging)
	names, err := e.FS.List(staging)
	if err != nil {
		return 0, err
	}
	var tables []string
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			tables = append(tables, n)
		}
	}
	if len(tables) == 0 {
		return 0, nil
	}
	slices.Sort(tables)
	tool, err := lookSSTDump()
	if err != nil {
		return 0, err
	}
	var tableBytes int64
	for _, f := range e.src.Files {
		if strings.HasSuffix(f.Name, ".sst") {
			tableBytes += f.Size
		}
	}
	timeout := SSTDumpTimeout + time.Duration(tableBytes/SSTDumpRate)*time.Second
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(tctx, tool, "--file="+staging, "--command=verify", "--verify_checksum")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	e.Log.Debug().Int("tables", len(tables)).Dur("took", time.Since(start)).Msg("sst_dump verify")
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sst_dump verify of %s: %w", staging, err)
	}
	if tctx.Err() != nil {
		return 0, fmt.Errorf("%w: sst_dump verify of %s: no answer within %s", ErrVerify, staging, timeout)
	}
	problems := parseSSTDumpVerify(staging, tables, stdout.String(), stderr.String())
	if len(problems) == 0 && runErr != nil {
		problems = []sstDumpProblem{{Cause: runErr.Error()}}
	}
	if len(problems) == 0 {
		return len(tables), nil
	}
	return 0, e.sstDumpError(staging, problems, runErr)
}

// sstDumpError makes one error of what sst_dump found (problems, at least
// one) and how it exited: the first corrupt table, as ErrBadSource naming
// the source's file, if there is one; else the first problem, as
// ErrVerify.
func (e *Env) sstDumpError(staging string, problems []sstDumpProblem, runErr error) error {
	more := ""
	if len(problems) > 1 {
		more = fmt.Sprintf(" (and %d more problems)", len(problems)-1)
	}
	if runErr != nil && problems[0].Cause != runErr.Error() {
		more += "; sst_dump: " + runErr.Error()
	}
	for _, p := range problems {
		if !p.Corrupt {
			continue
		}
		src, whose := p.Table, "the staged table's bytes are the source's"
		for _, f := range e.src.Files {
			if f.Name == p.Table {
				src = f.Path
			}
		}
		switch e.src.Kind {
		case KindRocksdb:
			whose = "it matches the backup's checksum: it was corrupt when the backup was made"
		case KindCheckpoint:
			whose = "the checkpoint's own table is corrupt"
		}
		return fmt.Errorf("%w: %w (sst_dump verify; %s)%s", ErrBadSource,
			&CorruptTableError{Path: src, Details: p.Cause}, whose, more)
	}
	p := problems[0]
	if p.Table != "" {
		p.Cause = p.Table + ": " + p.Cause
	}
	return fmt.Errorf("%w: sst_dump verify of %s: %s%s", ErrVerify, staging, p.Cause, more)
}

// sstDumpProblem is what parseSSTDumpVerify found wrong: with one table
// (its name in staging; "" when the output names none), and whether
// sst_dump called it corrupt.
type sstDumpProblem struct {
	Table   string
	Cause   string // one line, trimmed
	Corrupt bool
}

// maxCause bounds the length of a cause taken from sst_dump's output.
const maxCause = 300

// parseSSTDumpVerify reads the output of `sst_dump --file=DIR
// --command=verify --verify_checksum` over tables, the .sst files in dir,
// and returns every problem it shows, tables in order. sst_dump 7.8
// prints, for each table, "Process DIR/NAME" on stdout, then "The file is
// ok" on stdout, or on stderr "DIR/NAME is corrupted: CAUSE" (a bad block)
// or "DIR/NAME: CAUSE" (it could not open the table); it exits 0 either
// way. A table is ok only when "The file is ok" follows its Process line;
// every stderr line is a problem (of its table, when it names one), and a
// cause beginning "Corruption:" is a corrupt table.
func parseSSTDumpVerify(dir string, tables []string, stdout, stderr string) []sstDumpProblem {
	prefix := dir + "/"
	ok := map[string]bool{}
	current := ""
	for _, l := range strings.Split(stdout, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "Process "):
			current = strings.TrimPrefix(strings.TrimPrefix(l, "Process "), prefix)
		case l == "The file is ok" && current != "":
			ok[current] = true
			current = ""
		}
	}
	found := map[string][]sstDumpProblem{}
	var other []sstDumpProblem
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		p, named := parseSSTDumpLine(prefix, l)
		if !named {
			other = append(other, p)
			continue
		}
		if strings.HasSuffix(l, " is not a valid SST file") && len(found[p.Table]) > 0 {
			continue // the cause was the line before
		}
		found[p.Table] = append(found[p.Table], p)
	}
	var out []sstDumpProblem
	seen := map[string]bool{}
	for _, t := range tables {
		seen[t] = true
		switch {
		case len(found[t]) > 0:
			out = append(out, found[t]...)
		case !ok[t]:
			out = append(out, sstDumpProblem{Table: t, Cause: `no "The file is ok"`})
		}
	}
	var extra []string // tables sst_dump named that are not in the list
	for t := range found {
		if !seen[t] {
			extra = append(extra, t)
		}
	}
	slices.Sort(extra)
	for _, t := range extra {
		out = append(out, found[t]...)
	}
	return append(out, other...)
}

// parseSSTDumpLine reads one stderr line of sst_dump: "PREFIX+NAME is
// corrupted: CAUSE", "PREFIX+NAME: CAUSE" or "PREFIX+NAME is not a valid
// SST file". It reports whether the line named a table.
func parseSSTDumpLine(prefix, l string) (sstDumpProblem, bool) {
	rest, named := strings.CutPrefix(l, prefix)
	if !named {
		return sstDumpProblem{Cause: trimCause(l, prefix)}, false
	}
	for _, sep := range []string{" is corrupted: ", ": ", " is not a valid SST file"} {
		if name, cause, found := strings.Cut(rest, sep); found && name != "" && !strings.Contains(name, "/") {
			if cause == "" {
				cause = "not a valid SST file"
			}
			return sstDumpProblem{Table: name, Cause: trimCause(cause, prefix),
				Corrupt: strings.HasPrefix(cause, "Corruption:")}, true
		}
	}
	return sstDumpProblem{Cause: trimCause(l, prefix)}, false
}

// trimCause folds a cause onto one line, drops the staging directory from
// the paths in it (it is gone once the run is rolled back) and bounds its
// length.
func trimCause(s, prefix string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, prefix, "")), " ")
	if len(s) > maxCause {
		s = s[:maxCause] + "…"
	}
	return s
}
