package main

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fault"
	"github.com/kvrflow/kvrflow/internal/testutil"
	bolt "go.etcd.io/bbolt"
)

// operatorMistakes lists the cases of TestOperatorMistakes, by finding of
// the issue "Nothing lost, even when the operator errs" and beyond.
func operatorMistakes() []mistake {
	var cases []mistake
	add := func(c ...mistake) { cases = append(cases, c...) }

	// 1. Directories at a run's name that the run did not make.
	add(mistake{
		name: "legacy staging-1 with data, restore fails in precheck",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".kvrflow/staging-1/p", "precious")
			m.corruptBackup(t)
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"invalid backup"}, after: "same",
	}, mistake{
		name: "directory at this run's own staging name, restore fails in precheck",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			jid := m.jid(t) // run 1 committed; the next run is 2
			m.keep(t, m.db+".kvrflow/staging-"+jid+"-2/p", "precious")
			m.corruptBackup(t)
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"invalid backup"}, after: "same",
	}, mistake{
		name: "directory at this run's own staging name, restore succeeds",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			jid := m.jid(t)
			m.keep(t, m.db+".kvrflow/staging-"+jid+"-2/p", "precious")
			return m.restoreArgs()
		},
		code: exitOK, after: "new",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if !inQuarantine(t, m, "staging-"+m.jid(t)+"-2") {
				t.Error("the stranger at the run's staging name was not quarantined")
			}
		},
	}, mistake{
		name: "directory at this run's staging name, database open elsewhere",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".kvrflow/staging-"+m.jid(t)+"-2/p", "precious")
			m.holdDB(t, m.db)
			return m.restoreArgs()
		},
		code: exitInUse, mention: []string{"in use", "LOCK"}, after: "old",
	}, mistake{
		name: "directory at the crashed run's staging name appears before recover",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.jid(t)
			m.crashAt(t, "restore.precheck.begin") // run 2, before Write
			m.keep(t, m.db+".kvrflow/staging-"+m.jid(t)+"-2/p", "precious")
			return []string{"recover", "--db", m.db}
		},
		code: exitOK, mention: []string{"rolled_back"},
	}, mistake{
		name: "directory at the old-database name of this run, two-rename commit",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".kvrflow/old-"+m.jid(t)+"-2/p", "precious")
			return m.restoreArgs("--no-exchange")
		},
		code: exitOK, after: "new",
	}, mistake{
		name: "unknown file in kvrflow's directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.jid(t)
			m.keep(t, m.db+".kvrflow/notes.txt", "operator's notes")
			return m.restoreArgs()
		},
		code: exitOK, after: "new",
	}, mistake{
		name: "stale db.tmp of a Kvrocks restore",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".tmp/000001.sst", "only copy of something")
			return m.restoreArgs()
		},
		code: exitOK, after: "new",
	})

	// 2. The target.
	add(mistake{
		name: "--db is a home directory (the parent of the database, mistyped)",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			home := filepath.Join(m.root, "home", "alice")
			m.keep(t, filepath.Join(home, "docs", "thesis.txt"), "t")
			return []string{"restore", "--from", m.backup, "--db", home}
		},
		code: exitUsage, mention: []string{"alice", "holds no database", "docs/", "--force"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if _, err := os.Stat(filepath.Join(m.root, "home", "alice.kvrflow")); !os.IsNotExist(err) {
				t.Errorf("alice.kvrflow was created: %v", err)
			}
		},
	}, mistake{
		name: "--db is the database's parent directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.backup, "--db", filepath.Dir(m.db)}
		},
		code: exitUsage, mention: []string{filepath.Base("node"), "holds no database", "db/"}, after: "same",
	}, mistake{
		name: "--db holds a single stray file",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "other")
			m.keep(t, filepath.Join(d, "readme"), "r")
			return []string{"restore", "--from", m.backup, "--db", d}
		},
		code: exitUsage, mention: []string{"other", "readme"},
	}, mistake{
		name: "--db holds only a LOCK file",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "other")
			m.keep(t, filepath.Join(d, "LOCK"), "")
			return []string{"restore", "--from", m.backup, "--db", d}
		},
		code: exitUsage, mention: []string{"LOCK", "holds no database"},
	}, mistake{
		name: "--db holds many entries: the error names a few",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "other")
			for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
				m.keep(t, filepath.Join(d, n), n)
			}
			return []string{"restore", "--from", m.backup, "--db", d}
		},
		code: exitUsage, mention: []string{"a, b, c, d, e and 2 more"},
	}, mistake{
		name: "--force replaces a non-database and quarantines its contents",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "other")
			m.keep(t, filepath.Join(d, "docs", "thesis.txt"), "thesis")
			m.db = d
			return []string{"restore", "--from", m.backup, "--db", d, "--force"}
		},
		code: exitOK, after: "new",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if _, err := os.Stat(filepath.Join(m.db, "docs")); !os.IsNotExist(err) {
				t.Errorf("the old contents are still in DB: %v", err)
			}
		},
	}, mistake{
		name: "--db is an empty directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "empty")
			must(t, os.Mkdir(d, 0o755))
			m.db = d
			return []string{"restore", "--from", m.backup, "--db", d}
		},
		code: exitOK, after: "new",
	}, mistake{
		name: "--db is a regular file",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			p := filepath.Join(m.root, "file")
			m.keep(t, p, "a file")
			return []string{"restore", "--from", m.backup, "--db", p}
		},
		code: exitUsage, mention: []string{"file", "not a directory"},
	}, mistake{
		name: "--db is a symbolic link to the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			l := filepath.Join(m.root, "dblink")
			must(t, os.Symlink(m.db, l))
			return []string{"restore", "--from", m.backup, "--db", l}
		},
		code: exitUsage, mention: []string{"dblink", "symbolic link"}, after: "same",
	}, mistake{
		name: "--db is the root directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.backup, "--db", "/"}
		},
		code: exitUsage, mention: []string{"root directory"}, after: "same",
	}, mistake{
		name: "--db is a mount point",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "mnt")
			must(t, os.Mkdir(d, 0o755))
			mountTmpfs(t, d, "8m")
			m.cleanup = append(m.cleanup, func() { syscall.Unmount(d, 0) })
			m.keep(t, filepath.Join(d, "data"), "on its own file system")
			return []string{"restore", "--from", m.backup, "--db", d, "--force"}
		},
		code: exitUsage, mention: []string{"mnt", "mount point"},
	}, mistake{
		name: "--db inside the backup",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.backup, "--db", filepath.Join(m.backup, "db")}
		},
		code: exitUsage, mention: []string{"overlap"}, after: "same",
	}, mistake{
		name: "--from inside the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", filepath.Join(m.db, "sub"), "--db", m.db}
		},
		code: exitUsage, mention: []string{"overlap"}, after: "same",
	}, mistake{
		name: "--from is the database itself",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.db, "--db", m.db}
		},
		code: exitUsage, mention: []string{"overlap"}, after: "same",
	}, mistake{
		name: "--from mistyped",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.backup + "-typo", "--db", m.db}
		},
		code: exitUsage, mention: []string{"backup-typo", "no such file"}, after: "same",
	}, mistake{
		name: "--db spelled with a trailing slash and dot components is the same database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.verify.begin")
			return []string{"recover", "--db", filepath.Dir(m.db) + "/./db/"}
		},
		code: exitOK, mention: []string{"rolled_back"}, after: "same",
	})

	// 3. Two journals on one database.
	add(mistake{
		name: "a second journal's run crashed after its exchange; restore with the default journal",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.finish.begin", "--journal", filepath.Join(m.root, "B.db"))
			return m.restoreArgs()
		},
		code: exitJournal, mention: []string{"another journal's run is in flight", "recover"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			// The second journal still finishes its own run.
			mustRun(t, exitOK, nil, "recover", "--db", m.db, "--journal", filepath.Join(m.root, "B.db"))
			if got := m.which(t); got != "new" {
				t.Errorf("after journal B's recovery the database holds the %s contents", got)
			}
		},
	}, mistake{
		name: "a second journal's run crashed while writing; restore with the default journal",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.verify.begin", "--journal", filepath.Join(m.root, "B.db"))
			return m.restoreArgs()
		},
		code: exitJournal, mention: []string{"another journal's run is in flight"}, after: "same",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			mustRun(t, exitOK, nil, "recover", "--db", m.db, "--journal", filepath.Join(m.root, "B.db"))
			mustRun(t, exitOK, nil, m.restoreArgs()...)
		},
	})

	// 4. kvrflow's directory.
	add(mistake{
		name: "DB.kvrflow is a symbolic link to the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			must(t, os.Symlink(m.db, m.db+".kvrflow"))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"db.kvrflow", "symbolic link"}, after: "same",
	}, mistake{
		name: "DB.kvrflow is a symbolic link elsewhere",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			elsewhere := filepath.Join(m.root, "elsewhere")
			m.keep(t, filepath.Join(elsewhere, "x"), "x")
			must(t, os.Symlink(elsewhere, m.db+".kvrflow"))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"symbolic link"}, after: "same",
	}, mistake{
		name: "DB.kvrflow is a regular file",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".kvrflow", "a file")
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"db.kvrflow", "regular file", "not a directory"}, after: "same",
	}, mistake{
		name: "recover with DB.kvrflow a symbolic link",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			must(t, os.Symlink(m.db, m.db+".kvrflow"))
			return []string{"recover", "--db", m.db}
		},
		code: exitUsage, mention: []string{"symbolic link"}, after: "same",
	}, mistake{
		name: "the quarantine is a symbolic link",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.jid(t)
			elsewhere := filepath.Join(m.root, "elsewhere")
			m.keep(t, filepath.Join(elsewhere, "x"), "x")
			must(t, os.Symlink(elsewhere, m.db+".kvrflow/quarantine"))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"quarantine", "symbolic link"}, after: "same",
	}, mistake{
		name: "kvrflow's lock is a directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, m.db+".kvrflow/lock/x", "x")
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"lock", "directory"}, after: "same",
	}, mistake{
		name: "kvrflow's lock is a FIFO",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			must(t, os.MkdirAll(m.db+".kvrflow", 0o755))
			must(t, syscall.Mkfifo(m.db+".kvrflow/lock", 0o644))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"lock", "FIFO"}, after: "same",
	})

	// 5. Journal paths.
	add(mistake{
		name: "relative --journal inside DB.kvrflow is never quarantined",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.dir = filepath.Dir(m.db)
			must(t, os.MkdirAll(m.db+".kvrflow", 0o755))
			return []string{"restore", "--from", m.backup, "--db", "db", "--journal", "db.kvrflow/my.db"}
		},
		code: exitOK, after: "new",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if _, err := os.Stat(m.db + ".kvrflow/my.db"); err != nil {
				t.Errorf("the journal was moved: %v", err)
			}
			mustRun(t, exitOK, nil, "restore", "--from", m.backup, "--db", m.db, "--journal", m.db+".kvrflow/./my.db")
			if inQuarantine(t, m, "my.db") {
				t.Error("the journal was quarantined")
			}
		},
	}, mistake{
		name: "--journal inside the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return m.restoreArgs("--journal", filepath.Join(m.db, "j.db"))
		},
		code: exitUsage, mention: []string{"j.db", "inside the database"}, after: "same",
	}, mistake{
		name: "--journal inside the quarantine",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			must(t, os.MkdirAll(m.db+".kvrflow/quarantine", 0o755))
			return m.restoreArgs("--journal", m.db+".kvrflow/quarantine/j.db")
		},
		code: exitUsage, mention: []string{"j.db", "subdirectory"}, after: "same",
	}, mistake{
		name: "--journal is a directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "jdir")
			m.keep(t, filepath.Join(d, "x"), "x")
			return m.restoreArgs("--journal", d)
		},
		code: exitUsage, mention: []string{"jdir", "directory"}, after: "same",
	}, mistake{
		name: "recover with --journal inside the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"recover", "--db", m.db, "--journal", filepath.Join(m.db, "j.db")}
		},
		code: exitUsage, mention: []string{"inside the database"}, after: "same",
	})

	// 8. Locks in recovery.
	add(mistake{
		name: "recover while a server holds the new database, after the commit",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.finish.begin")
			m.holdDB(t, m.db)
			return []string{"recover", "--db", m.db}
		},
		code: exitInUse, mention: []string{"in use", "LOCK"}, after: "old",
		check: func(t *testing.T, m *mistakeEnv, r result) {
			st := mustRun(t, exitOK, nil, "status", "--db", m.db)
			if !strings.Contains(st.stdout, "finish") {
				t.Errorf("the run is no longer in finish:\n%s", st.stdout)
			}
			recoverAfterRelease(t, m, r)
		},
	}, mistake{
		name: "recover while a server holds the old database, before the commit",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.commit.begin")
			m.holdDB(t, m.db)
			return []string{"recover", "--db", m.db}
		},
		code: exitInUse, mention: []string{"in use"}, after: "old", check: recoverAfterRelease,
	}, mistake{
		name: "restore (which recovers first) while a server holds the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.finish.begin", "--no-exchange")
			m.holdDB(t, m.db)
			return m.restoreArgs()
		},
		code: exitInUse, mention: []string{"in use"}, after: "old", check: recoverAfterRelease,
	}, mistake{
		name: "recover while a server holds the old database where the exchange left it",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.finish.begin")
			matches, _ := filepath.Glob(m.db + ".kvrflow/staging-*")
			if len(matches) != 1 {
				t.Fatalf("staging directories: %v", matches)
			}
			m.holdDB(t, matches[0])
			return []string{"recover", "--db", m.db}
		},
		code: exitInUse, mention: []string{"in use", "staging-"}, after: "old", check: recoverAfterRelease,
	})

	// 9. fsync errors are final; 11. link failures.
	add(mistake{
		name: "a failed fsync while writing rolls back at once",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.env = []string{fault.EnvVar + "=fs.before-file-sync:eio"}
			return m.restoreArgs("--mode", "copy")
		},
		code: exitRolledBack, mention: []string{"fsync failed"}, after: "same",
	}, mistake{
		name: "a failed directory fsync after the commit is not retried: left in flight",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			// The last directory fsync of a restore is Finish's, after it
			// removed the old database: count them on a twin.
			twin := filepath.Join(m.root, "twin")
			must(t, os.CopyFS(twin, os.DirFS(m.db)))
			var doc struct {
				Syncs struct {
					Dirs int `json:"dirs"`
				} `json:"syncs"`
			}
			r := mustRun(t, exitOK, nil, "restore", "--from", m.backup, "--db", twin, "--json")
			decodeLoose(t, r, &doc)
			m.env = []string{fault.EnvVar + "=fs.before-dir-sync:eio@" + strconv.Itoa(doc.Syncs.Dirs)}
			return m.restoreArgs()
		},
		code: exitInFlight, mention: []string{"recover"},
		check: func(t *testing.T, m *mistakeEnv, r result) {
			if n := strings.Count(r.stderr, "trying again"); n != 0 {
				t.Errorf("the failed step was tried again %d times:\n%s", n, r.stderr)
			}
			mustRun(t, exitOK, nil, "recover", "--db", m.db)
			if got := m.which(t); got != "new" {
				t.Errorf("after recover the database holds the %s contents", got)
			}
		},
	}, mistake{
		name: "--mode link across file systems names EXDEV or refuses before the run",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			shm := otherFS(t, m)
			return []string{"restore", "--from", shm, "--db", m.db, "--mode", "link"}
		},
		code: exitUsage, mention: []string{"another file system"}, after: "same",
	})
	add(sourceMistakes()...)
	add(journalMistakes()...)
	add(reviewMistakes()...)
	add(recoverMistakes()...)
	add(journalPlaceMistakes()...)
	add(targetMistakes()...)
	add(keepMistakes()...)
	add(trashMistakes()...)
	return cases
}

// mountTmpfs mounts a tmpfs of size at dir, or skips the test where
// mounting is not permitted (outside CI).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs at %s (CI runs as root): %v", dir, err)
		}
		t.Skipf("cannot mount a tmpfs here (not root?): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// otherFS copies the fixture's backup onto a tmpfs mounted for the test
// and returns its path there.
func otherFS(t *testing.T, m *mistakeEnv) string {
	t.Helper()
	d := filepath.Join(m.root, "shm")
	must(t, os.Mkdir(d, 0o755))
	mountTmpfs(t, d, "64m")
	dst := filepath.Join(d, "backup")
	must(t, os.CopyFS(dst, os.DirFS(m.backup)))
	return dst
}

// decodeLoose parses stdout as a JSON document into v, ignoring fields v
// does not name.
func decodeLoose(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r)
	}
}

// sourceMistakes are special files where a backup lists a file: refused
// before anything is opened for reading (exit 2), the database untouched.
func sourceMistakes() []mistake {
	replaceFirstTable := func(t *testing.T, m *mistakeEnv, make func(p string) error) string {
		ssts, _ := filepath.Glob(filepath.Join(m.backup, "*.sst"))
		if len(ssts) == 0 {
			t.Fatal("no table in the backup")
		}
		must(t, os.Remove(ssts[0]))
		must(t, make(ssts[0]))
		return filepath.Base(ssts[0])
	}
	return []mistake{{
		name: "a FIFO where the backup lists a table",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			replaceFirstTable(t, m, func(p string) error { return syscall.Mkfifo(p, 0o644) })
			return m.restoreArgs("--mode", "copy")
		},
		code: exitUsage, mention: []string{".sst", "FIFO"}, after: "same",
	}, {
		name: "a character device where the backup lists a table",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			replaceFirstTable(t, m, func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) }) // /dev/zero
			return m.restoreArgs("--mode", "copy")
		},
		code: exitUsage, mention: []string{".sst", "character device"}, after: "same",
	}, {
		name: "a directory where the backup lists a table",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			replaceFirstTable(t, m, func(p string) error { return os.Mkdir(p, 0o755) })
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{".sst", "directory"}, after: "same",
	}}
}

// deleteKey removes key run from bucket of the journal at path, with bbolt
// directly, as a careless edit would.
func deleteKey(t *testing.T, path, bucket string, run uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Delete(binary.BigEndian.AppendUint64(nil, run))
	}))
}

// journalMistakes are journals that contradict themselves: every command
// that would act on them exits 4, naming the run, and changes nothing.
func journalMistakes() []mistake {
	var out []mistake
	for _, cmd := range []string{"recover", "restore", "undo"} {
		for _, bucket := range []string{"inflight", "runs"} {
			out = append(out, mistake{
				name: cmd + " with a run in flight whose " + bucket + " entry was deleted",
				setup: func(t *testing.T, m *mistakeEnv) []string {
					m.crashAt(t, "restore.verify.begin")
					deleteKey(t, m.db+".kvrflow/journal.db", bucket, 1)
					switch cmd {
					case "restore":
						return m.restoreArgs()
					case "undo":
						return []string{"undo", "--db", m.db}
					}
					return []string{"recover", "--db", m.db}
				},
				code: exitJournal, mention: []string{"run 1"}, after: "same",
				check: func(t *testing.T, m *mistakeEnv, _ result) {
					// The fixture's journal check would trip on the damage.
					must(t, os.RemoveAll(m.db+".kvrflow"))
				},
			})
		}
	}
	return out
}

// reviewMistakes are what a hostile review of kvrflow found: each one a
// way data kvrflow does not own was lost before it was fixed.
func reviewMistakes() []mistake {
	return []mistake{{
		name: "DB/LOCK is a symbolic link to a file kvrflow does not own",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			victim := filepath.Join(m.root, "victim")
			m.keep(t, victim, "not kvrflow's")
			must(t, os.Remove(filepath.Join(m.db, "LOCK")))
			must(t, os.Symlink(victim, filepath.Join(m.db, "LOCK")))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"LOCK", "symbolic link"}, after: "same",
	}, {
		name: "kvrflow's lock is a hard link to a file kvrflow does not own",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			victim := filepath.Join(m.root, "victim")
			m.keep(t, victim, "not kvrflow's")
			must(t, os.MkdirAll(m.db+".kvrflow", 0o755))
			must(t, os.Link(victim, m.db+".kvrflow/lock"))
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"lock", "hard links"}, after: "same",
	}, {
		name: "the staging directory's LOCK is a symbolic link when recover runs",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "fs.after-exchange")
			victim := filepath.Join(m.root, "victim")
			m.keep(t, victim, "not kvrflow's")
			staging, _ := filepath.Glob(m.db + ".kvrflow/staging-*")
			if len(staging) != 1 {
				t.Fatalf("staging: %v", staging)
			}
			lock := filepath.Join(staging[0], "LOCK")
			_ = os.Remove(lock)
			must(t, os.Symlink(victim, lock))
			return []string{"recover", "--db", m.db}
		},
		code: exitUsage, mention: []string{"LOCK", "symbolic link"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			staging, _ := filepath.Glob(m.db + ".kvrflow/staging-*")
			must(t, os.Remove(filepath.Join(staging[0], "LOCK")))
			mustRun(t, exitOK, nil, "recover", "--db", m.db)
		},
	}, {
		name: "a server wrote to the new database between a crash after the swap and recover",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "fs.after-exchange")
			// The wrong boot order: the server starts before recover, opens
			// the (uncommitted) new database at DB and writes to it.
			db, err := pebble.Open(m.db, &pebble.Options{Logger: quietLogger{}})
			must(t, err)
			must(t, db.Set([]byte("written-by-the-server"), []byte("precious"), pebble.Sync))
			must(t, db.Close())
			return []string{"recover", "--db", m.db}
		},
		code: exitOK, mention: []string{"rolled_back"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if got := m.which(t); got != "old" {
				t.Errorf("DB holds the %s database, want the old", got)
			}
			q, _ := filepath.Glob(m.db + ".kvrflow/quarantine/*staging-*")
			if len(q) != 1 {
				t.Fatalf("the database the server wrote to was not kept in quarantine: %v", q)
			}
			kv, err := testutil.TryReadDB(vfs.Default, q[0])
			if err != nil || kv["written-by-the-server"] != "precious" {
				t.Fatalf("the server's write is lost: %v", err)
			}
		},
	}}
}

// recoverMistakes: recover, the start-up call, never says "nothing to
// recover" while work is in flight, and never creates a journal.
func recoverMistakes() []mistake {
	return []mistake{{
		name: "recover with the default journal while another journal's run is in flight",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "fs.after-rename", "--no-exchange", "--journal", filepath.Join(m.root, "B.db"))
			return []string{"recover", "--db", m.db}
		},
		code: exitJournal, mention: []string{"another journal's run is in flight", "does not exist"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			st := mustRun(t, exitOK, nil, "status", "--db", m.db)
			if !strings.Contains(st.stdout, "other journals:") {
				t.Errorf("status does not show the other journal's run:\n%s", st.stdout)
			}
			mustRun(t, exitOK, nil, "recover", "--db", m.db, "--journal", filepath.Join(m.root, "B.db"))
			if got := m.which(t); got != "old" {
				t.Errorf("DB holds the %s database", got)
			}
		},
	}, {
		name: "recover with a mistyped --journal creates nothing",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.jid(t)
			return []string{"recover", "--db", m.db, "--journal", filepath.Join(m.root, "typo.db")}
		},
		code: exitOK, mention: []string{"typo.db", "no kvrflow journal"}, after: "same",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if _, err := os.Stat(filepath.Join(m.root, "typo.db")); !os.IsNotExist(err) {
				t.Errorf("recover created a journal at the mistyped path: %v", err)
			}
		},
	}}
}

// journalPlaceMistakes: a second journal kept in kvrflow's directory, as
// the error about journal paths suggests, is never quarantined by a run of
// the default journal.
func journalPlaceMistakes() []mistake {
	return []mistake{{
		name: "a journal kept in kvrflow's directory survives a run of the default journal",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			mustRun(t, exitOK, nil, m.restoreArgs("--journal", m.db+".kvrflow/alt.db")...)
			return m.restoreArgs()
		},
		code: exitOK, after: "new",
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if inQuarantine(t, m, "alt.db") {
				t.Fatal("the other journal was quarantined")
			}
			st := mustRun(t, exitOK, nil, "journal", "list", "--journal", m.db+".kvrflow/alt.db")
			if !strings.Contains(st.stdout, "committed") {
				t.Fatalf("the other journal lost its run:\n%s", st.stdout)
			}
		},
	}}
}

// targetMistakes are more of a hostile review's findings about targets.
func targetMistakes() []mistake {
	return []mistake{{
		name: "--db inside a crashed run's staging directory (the only copy of the old database)",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "fs.after-exchange")
			staging, _ := filepath.Glob(m.db + ".kvrflow/staging-*")
			if len(staging) != 1 {
				t.Fatalf("staging: %v", staging)
			}
			return []string{"restore", "--from", m.backup, "--db", staging[0]}
		},
		code: exitUsage, mention: []string{"kvrflow directory"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			mustRun(t, exitOK, nil, "recover", "--db", m.db)
			if got := m.which(t); got != "old" {
				t.Errorf("after recover DB holds the %s database", got)
			}
		},
	}, {
		name: "a database directory that also holds the operator's files",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, filepath.Join(m.db, "mydata", "file"), "x")
			m.keep(t, filepath.Join(m.db, "README.txt"), "n")
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"not the database's", "README.txt", "mydata/"}, after: "same",
	}, {
		name: "--force on a database directory with the operator's files keeps them in quarantine",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, filepath.Join(m.db, "mydata", "file"), "x")
			return m.restoreArgs("--force")
		},
		code: exitOK, after: "new",
	}, {
		name: "--force on the parent of an open database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.holdDB(t, m.db)
			return []string{"restore", "--from", m.backup, "--db", filepath.Dir(m.db), "--force"}
		},
		code: exitInUse, mention: []string{"LOCK", "open"}, after: "old",
	}, {
		name: "--db is the parent of the database: the error names the database below",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"restore", "--from", m.backup, "--db", filepath.Dir(m.db)}
		},
		code: exitUsage, mention: []string{"did you mean --db", "/node/db"}, after: "same",
	}, {
		name: "backup into the database directory",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			return []string{"backup", "--db", m.db, "--to", filepath.Join(m.db, "bk")}
		},
		code: exitUsage, mention: []string{"inside the database"}, after: "same",
	}, {
		name: "--journal is another program's bbolt file",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			p := filepath.Join(m.root, "app.db")
			db, err := bolt.Open(p, 0o600, nil)
			must(t, err)
			must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("app")); return err }))
			must(t, db.Close())
			b, err := os.ReadFile(p)
			must(t, err)
			m.precious[p] = string(b)
			return m.restoreArgs("--journal", p)
		},
		code: exitJournal, mention: []string{"not a kvrflow journal"}, after: "same",
	}, {
		name: "not enough space: refused before anything is made",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			d := filepath.Join(m.root, "small")
			must(t, os.Mkdir(d, 0o755))
			mountTmpfs(t, d, "4m")
			return []string{"restore", "--from", m.backup, "--db", filepath.Join(d, "db")}
		},
		code: exitUsage, mention: []string{"MiB free", "needs"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if _, err := os.Stat(filepath.Join(m.root, "small", "db.kvrflow")); !os.IsNotExist(err) {
				t.Errorf("a refused restore made its kvrflow directory: %v", err)
			}
		},
	}}
}

// keepMistakes are what a second hostile review found about kept
// databases and undo.
func keepMistakes() []mistake {
	kept := func(t *testing.T, m *mistakeEnv) string {
		mustRun(t, exitOK, nil, m.restoreArgs("--keep-old")...)
		k, _ := filepath.Glob(m.db + ".kvrflow/previous-*")
		if len(k) != 1 {
			t.Fatalf("kept: %v", k)
		}
		return k[0]
	}
	return []mistake{{
		name: "retention leaves a kept database a server holds open",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.holdDB(t, kept(t, m))
			return m.restoreArgs("--keep-old=1")
		},
		code: exitOK, after: "new",
		check: func(t *testing.T, m *mistakeEnv, r result) {
			if k, _ := filepath.Glob(m.db + ".kvrflow/previous-*"); len(k) != 2 {
				t.Errorf("kept %v: the one in use must stay beside the new one", k)
			}
		},
	}, {
		name: "retention quarantines a kept database the operator wrote to",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, filepath.Join(kept(t, m), "NOTES.txt"), "the operator's")
			return m.restoreArgs("--keep-old=1")
		},
		code: exitOK, after: "new",
	}, {
		name: "a file system mounted inside the database",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			imp := filepath.Join(m.root, "imp")
			m.keep(t, filepath.Join(imp, "gold.txt"), "gold")
			must(t, os.Mkdir(filepath.Join(m.db, "archive"), 0o755))
			if err := syscall.Mount(imp, filepath.Join(m.db, "archive"), "", syscall.MS_BIND, ""); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatal(err)
				}
				t.Skipf("bind mount not permitted: %v", err)
			}
			m.cleanup = append(m.cleanup, func() { syscall.Unmount(filepath.Join(m.db, "archive"), syscall.MNT_DETACH) })
			return m.restoreArgs()
		},
		code: exitUsage, mention: []string{"mounted", "archive"},
	}, {
		name: "--keep-old survives a crash after the commit",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.crashAt(t, "restore.finish.begin", "--keep-old")
			return []string{"recover", "--db", m.db}
		},
		code: exitOK,
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if got := m.which(t); got != "new" {
				t.Fatalf("DB holds the %s database", got)
			}
			mustRun(t, exitOK, nil, "undo", "--db", m.db)
			if got := m.which(t); got != "old" {
				t.Fatalf("undo after the recovery: DB holds the %s database, want the old one kept", got)
			}
		},
	}, {
		name: "another journal's undo in flight is seen",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			alt := filepath.Join(m.root, "alt.db")
			mustRun(t, exitOK, nil, m.restoreArgs("--journal", alt, "--keep-old")...)
			r := cli(t, []string{fault.EnvVar + "=fs.after-exchange:crash"}, "undo", "--db", m.db, "--journal", alt)
			if r.signal != syscall.SIGKILL {
				t.Fatalf("undo not killed: %s", r)
			}
			return m.restoreArgs()
		},
		code: exitJournal, mention: []string{"another journal's run is in flight"},
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			mustRun(t, exitOK, nil, "recover", "--db", m.db, "--journal", filepath.Join(m.root, "alt.db"))
			mustRun(t, exitOK, nil, "undo", "--db", m.db, "--journal", filepath.Join(m.root, "alt.db"))
			if got := m.which(t); got != "old" {
				t.Fatalf("the other journal's undo does not work after its recovery: %s", got)
			}
		},
	}, {
		name: "undo with the database path a symbolic link",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			kept(t, m)
			real := m.db + "-real"
			must(t, os.Rename(m.db, real))
			must(t, os.Symlink(real, m.db))
			m.cleanup = append(m.cleanup, func() { os.Remove(m.db); os.Rename(real, m.db) })
			return []string{"undo", "--db", m.db}
		},
		code: exitUsage, mention: []string{"symbolic link"},
	}, {
		name: "a stranger at the undo's own kept name",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			kept(t, m) // runs 1 (jid) and 2; the undo is run 3
			m.keep(t, m.db+".kvrflow/previous-"+m.jid(t)+"-3/f", "a stranger's")
			return []string{"undo", "--db", m.db}
		},
		code: exitOK,
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			if got := m.which(t); got != "old" {
				t.Fatalf("DB holds the %s database", got)
			}
			mustRun(t, exitOK, nil, "undo", "--db", m.db) // the redo
			if got := m.which(t); got != "new" {
				t.Fatalf("redo: DB holds the %s database", got)
			}
		},
	}}
}

// interrupted makes run 2 of the fixture an interrupted copy restore
// that set its partial staging aside, and returns the trash's path.
func (m *mistakeEnv) interrupted(t *testing.T) string {
	t.Helper()
	m.jid(t) // run 1
	big := filepath.Join(m.root, "big-backup")
	if _, err := os.Stat(big); err != nil {
		src := filepath.Join(m.root, "big")
		makeBigDB(t, src, 640, 16<<10)
		mustRun(t, exitOK, nil, "backup", "--db", src, "--to", big)
	}
	w := watch(t, []string{fault.EnvVar + "=fs.write:delay=1s@2"}, firedLine("fs.write", 2),
		"restore", "--from", big, "--db", m.db, "--mode", "copy")
	if !w.await(t) {
		t.FailNow()
	}
	must(t, w.cmd.Process.Signal(os.Interrupt))
	if r := w.end(t); r.code != exitRolledBack {
		t.Fatalf("the interrupted restore: %s", r)
	}
	trash, _ := filepath.Glob(m.db + ".kvrflow/trash-*")
	if len(trash) != 1 {
		t.Fatalf("trash: %v", trash)
	}
	return trash[0]
}

// trashMistakes: the partial copy an interrupted restore sets aside is
// removed only while it is what the run set aside.
func trashMistakes() []mistake {
	return []mistake{{
		name: "the operator wrote into an interrupted restore's partial copy before recover",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.keep(t, filepath.Join(m.interrupted(t), "OPERATOR-NOTES"), "mine")
			return []string{"recover", "--db", m.db}
		},
		code: exitOK, mention: []string{"quarantine"},
	}, {
		name: "journal prune keeps the run that set a partial copy aside",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.interrupted(t)
			return []string{"journal", "prune", "--db", m.db, "--keep", "1"}
		},
		code: exitOK,
		check: func(t *testing.T, m *mistakeEnv, _ result) {
			rec := mustRun(t, exitOK, nil, "recover", "--db", m.db)
			// Removed by proof, or (files journaled complete) kept by
			// proof for a resume.
			if !strings.Contains(rec.stdout, "removed the partial copy") && !strings.Contains(rec.stderr, "kept an interrupted restore's partial copy") {
				t.Errorf("after the prune, recover did not prove the partial copy its own:\n%s", rec)
			}
		},
	}, {
		name: "a purge never removes a quarantine entry that is a mount point",
		setup: func(t *testing.T, m *mistakeEnv) []string {
			m.jid(t)
			vol := m.db + ".kvrflow/quarantine/run7-vol"
			must(t, os.MkdirAll(vol, 0o755))
			mountTmpfs(t, vol, "4m")
			m.cleanup = append(m.cleanup, func() { syscall.Unmount(vol, syscall.MNT_DETACH) })
			m.keep(t, filepath.Join(vol, "d", "data"), "on its own file system")
			return []string{"quarantine", "purge", "--db", m.db, "--older-than", "1ns", "--yes"}
		},
		code: exitOK,
		check: func(t *testing.T, m *mistakeEnv, r result) {
			if !strings.Contains(r.stderr, "mount point") {
				t.Errorf("the purge does not say why it left the entry:\n%s", r.stderr)
			}
		},
	}}
}
