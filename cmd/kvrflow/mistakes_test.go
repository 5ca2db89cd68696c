package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/journal"
)

// mistake is one operator mistake, tried through the real binary.
type mistake struct {
	name string
	// setup prepares the mistake in m (a fresh fixture with an old database
	// and a backup) and returns the command's arguments.
	setup func(t *testing.T, m *mistakeEnv) []string
	// code is the exit code the command must end with.
	code int
	// mention are words the one-line error must hold (the path and the
	// cause); for code 0 they are looked for in stdout and stderr.
	mention []string
	// after is what DB must hold afterwards: "same" (byte for byte what it
	// held before), "old" (the keys it held when the case's server opened
	// it, which may rewrite its files), "new" (the backup's) or "" (the
	// case checks itself).
	after string
	// check, if set, runs last.
	check func(t *testing.T, m *mistakeEnv, r result)
}

// mistakeEnv is one case's world: the fixture and the data kvrflow does
// not own, which must survive whatever kvrflow does.
type mistakeEnv struct {
	*fixture
	dir      string            // the command's working directory ("" for the test's)
	env      []string          // extra environment
	precious map[string]string // path -> content of data kvrflow does not own
	held     map[string]string // the database's keys when holdDB opened it
	cleanup  []func()
}

// keep writes content at path (creating parents) as data kvrflow does not
// own: after the command it must still be there, or in quarantine.
func (m *mistakeEnv) keep(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o644))
	m.precious[path] = content
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOperatorMistakes: each ordinary mistake of an operator ends with
// the documented exit code, a one-line error naming the path and the
// cause, the database as it was (by content) unless the command was meant
// to replace it, and every byte of data kvrflow does not own still
// present, in place or in quarantine.
func TestOperatorMistakes(t *testing.T) {
	cases := operatorMistakes()
	if len(cases) < 40 {
		t.Errorf("%d operator mistakes; the suite promises at least 40", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &mistakeEnv{fixture: newFixture(t, 60, 80), precious: map[string]string{}}
			args := tc.setup(t, m)
			defer m.release()
			var before string
			if tc.after == "same" {
				before = snapshotDir(t, m.db)
			}
			cmd, stdout, stderr := newCmd(m.env, args...)
			cmd.Dir = m.dir
			r := ended(t, cmd, stdout, stderr, cmd.Run())
			if r.code != tc.code || r.signal != 0 {
				t.Fatalf("want exit %d, got %s", tc.code, r)
			}
			if tc.code != exitOK {
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				last := lines[len(lines)-1]
				if !strings.HasPrefix(last, "Error: ") {
					t.Errorf("stderr does not end with one Error: line:\n%s", r.stderr)
				}
				for _, w := range tc.mention {
					if !strings.Contains(last, w) {
						t.Errorf("error line %q does not mention %q", last, w)
					}
				}
			} else {
				for _, w := range tc.mention {
					if !strings.Contains(r.stdout+r.stderr, w) {
						t.Errorf("output does not mention %q:\n%s", w, r)
					}
				}
			}
			switch tc.after {
			case "old":
				m.release()
				if got := m.readDB(t); !testutil.Equal(got, m.held) {
					t.Errorf("the database's keys changed while a server held it: %d keys, held %d", len(got), len(m.held))
				}
			case "same":
				if after := snapshotDir(t, m.db); after != before {
					t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
				}
			case "new":
				if got := m.which(t); got != "new" {
					t.Errorf("the database holds the %s contents, want the backup's", got)
				}
			}
			checkPrecious(t, m)
			if tc.check != nil {
				tc.check(t, m, r)
			}
		})
	}
}

// snapshotDir describes every file below dir by path, size and SHA-256
// ("absent" if dir does not exist), for a byte-for-byte comparison.
func snapshotDir(t testing.TB, dir string) string {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return "absent"
	}
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type().IsRegular() && d.Name() != "LOCK" {
			// (LOCK is not read: closing a descriptor of it would drop the
			// fcntl lock a held database has on it, in this process.)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s:%x", rel, sha256.Sum256(b)))
		} else {
			lines = append(lines, rel+":"+d.Type().String())
		}
		return nil
	})
	must(t, err)
	sort.Strings(lines)
	return strings.Join(lines, " ")
}

// checkPrecious fails the test unless every precious file is at its path
// with its content, or somewhere in DB.kvrflow/quarantine under its name
// with its content.
func checkPrecious(t *testing.T, m *mistakeEnv) {
	t.Helper()
	for path, content := range m.precious {
		if b, err := os.ReadFile(path); err == nil && string(b) == content {
			continue
		}
		found := false
		_ = filepath.WalkDir(m.db+".kvrflow/quarantine", func(p string, d fs.DirEntry, err error) error {
			name := filepath.Base(path)
			if err == nil && d.Type().IsRegular() && (d.Name() == name || strings.HasSuffix(d.Name(), "-"+name)) {
				if b, err := os.ReadFile(p); err == nil && string(b) == content {
					found = true
				}
			}
			return nil
		})
		if !found {
			t.Errorf("%s (%q) is lost: neither in place nor in quarantine", path, content)
		}
	}
}

// jid returns the id of the fixture's default journal, making the journal
// first with a restore if there is none.
func (m *mistakeEnv) jid(t *testing.T) string {
	t.Helper()
	p := m.db + ".kvrflow/journal.db"
	if _, err := os.Stat(p); err != nil {
		mustRun(t, exitOK, nil, m.restoreArgs()...)
	}
	j, err := journal.Open(p, journal.Options{ReadOnly: true})
	must(t, err)
	defer j.Close()
	return j.ID()
}

// corruptBackup truncates the backup's first table: Precheck refuses it.
func (m *mistakeEnv) corruptBackup(t *testing.T) {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(m.backup, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table in the backup")
	}
	must(t, os.Truncate(ssts[0], 10))
}

// holdDB opens the database in this process, as a server would, until the
// case ends.
func (m *mistakeEnv) holdDB(t *testing.T, dir string) {
	t.Helper()
	if m.held == nil {
		m.held = m.readDB(t)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	must(t, err)
	m.cleanup = append(m.cleanup, func() { db.Close() })
}

// release runs the case's cleanups now (closing a held database).
func (m *mistakeEnv) release() {
	for _, c := range m.cleanup {
		c()
	}
	m.cleanup = nil
}

// recoverAfterRelease closes what the case held, then recover must finish
// the run the case left in flight.
func recoverAfterRelease(t *testing.T, m *mistakeEnv, _ result) {
	t.Helper()
	m.release()
	mustRun(t, exitOK, nil, "recover", "--db", m.db)
}

// crashAt runs a restore of the fixture (with extra flags) killed at a
// fault point.
func (m *mistakeEnv) crashAt(t *testing.T, point string, extra ...string) {
	t.Helper()
	r := cli(t, []string{fault.EnvVar + "=" + point + ":crash"}, m.restoreArgs(extra...)...)
	if r.signal != syscall.SIGKILL {
		t.Fatalf("the restore was not killed at %s: %s", point, r)
	}
}

// inQuarantine reports whether something named like name was quarantined.
func inQuarantine(t *testing.T, m *mistakeEnv, name string) bool {
	t.Helper()
	entries, _ := os.ReadDir(m.db + ".kvrflow/quarantine")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-"+name) {
			return true
		}
	}
	return false
}
