package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutput_IsHonest: the rough edges an operator trips over, each
// through the real binary.
func TestOutput_IsHonest(t *testing.T) {
	f := newFixture(t, 20, 20)
	rel, err := filepath.Rel(mustGetwd(t), f.db)
	must(t, err)

	t.Run("json paths are absolute", func(t *testing.T) {
		var doc restoreJSON
		decode(t, mustRun(t, exitOK, nil, "restore", "--from", f.backup, "--db", rel, "--json"), &doc)
		if doc.DB != f.db || !filepath.IsAbs(doc.Source) {
			t.Errorf("restore --json db %q source %q, want absolute paths", doc.DB, doc.Source)
		}
		r := mustRun(t, exitOK, nil, "recover", "--db", rel, "--json")
		if !strings.Contains(r.stdout, `"db": "`+f.db+`"`) {
			t.Errorf("recover --json:\n%s", r.stdout)
		}
	})
	t.Run("log-format json: every stderr line is JSON, the error too", func(t *testing.T) {
		r := mustRun(t, exitUsage, nil, "restore", "--from", f.backup+"-typo", "--db", f.db, "--log-format", "json")
		for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Errorf("not JSON: %q", line)
				continue
			}
			if ts, _ := v["time"].(string); !strings.Contains(ts, ".") {
				t.Errorf("time %q has no milliseconds", ts)
			}
		}
		if !strings.Contains(r.stderr, `"exit_code":2`) || !strings.Contains(r.stderr, "backup-typo") {
			t.Errorf("the error line:\n%s", r.stderr)
		}
	})
	t.Run("a fault rule that never fired is said", func(t *testing.T) {
		r := mustRun(t, exitOK, []string{"KVRFLOW_FAULT=fs.before-link:eio@999"}, f.restoreArgs()...)
		if !strings.Contains(r.stderr, "never fired") || !strings.Contains(r.stderr, "fs.before-link@999") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
	t.Run("--backup-id with a kvrflow backup", func(t *testing.T) {
		r := mustRun(t, exitUsage, nil, f.restoreArgs("--backup-id", "7")...)
		if !strings.Contains(r.stderr, "not a RocksDB BackupEngine directory") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
	t.Run("--verify size in copy mode says it reads every byte", func(t *testing.T) {
		r := mustRun(t, exitOK, nil, f.restoreArgs("--mode", "copy", "--verify", "size")...)
		if !strings.Contains(r.stderr, "reads every byte anyway") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
	t.Run("recover for a path with no journal says so", func(t *testing.T) {
		r := mustRun(t, exitOK, nil, "recover", "--db", filepath.Join(f.root, "elsewhere"))
		if !strings.Contains(r.stdout, "no kvrflow journal for") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("each fact once", func(t *testing.T) {
		r := mustRun(t, exitUsage, nil, "journal", "list", "--db", filepath.Join(f.root, "elsewhere"))
		if n := strings.Count(r.stderr, filepath.Join(f.root, "elsewhere")); n != 1 {
			t.Errorf("the path is named %d times:\n%s", n, r.stderr)
		}
		r = mustRun(t, exitUsage, nil, "journal", "export", "--db", f.db, "--run", "99")
		if strings.Count(r.stderr, "run 99") != 1 || strings.Contains(r.stderr, "--run 99") {
			t.Errorf("run 99 is named more than once:\n%s", r.stderr)
		}
	})
	t.Run("graph --json keeps -->", func(t *testing.T) {
		r := mustRun(t, exitOK, nil, "journal", "graph", "--db", f.db, "--json")
		if strings.Contains(r.stdout, `\u003e`) || !strings.Contains(r.stdout, "-->") {
			t.Errorf("graph --json escapes -->:\n%.300s", r.stdout)
		}
	})
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	must(t, err)
	return wd
}
