package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/testutil"
)

// backupJSON is backup --json's document.
type backupJSON struct {
	Dir      string `json:"dir"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Mode     string `json:"mode"`
	Why      string `json:"mode_reason"`
	ExitCode int    `json:"exit_code"`
}

func TestBackup_ThenRestoreHoldsTheSameKeys(t *testing.T) {
	root := t.TempDir()
	src, backup, db := filepath.Join(root, "src"), filepath.Join(root, "backup"), filepath.Join(root, "db")
	want := testutil.MakeDB(t, vfs.Default, src, 3, 250)
	var doc backupJSON
	decode(t, mustRun(t, exitOK, nil, "backup", "--db", src, "--to", backup, "--json"), &doc)
	if doc.Dir != backup || doc.Files == 0 || doc.Bytes == 0 {
		t.Errorf("backup --json = %+v", doc)
	}
	mustRun(t, exitOK, nil, "restore", "--from", backup, "--db", db)
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Fatalf("restored database has %d keys, the source had %d", len(got), len(want))
	}
	checkJournal(t, db)
}

func TestBackup_RefusesAnExistingTargetOrMissingDatabase(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	testutil.MakeDB(t, vfs.Default, src, 3, 10)
	r := mustRun(t, exitUsage, nil, "backup", "--db", src, "--to", root, "--json")
	var doc struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	decode(t, r, &doc)
	if doc.Error == "" || doc.ExitCode != exitUsage {
		t.Errorf("backup --json onto an existing directory = %+v", doc)
	}
	mustRun(t, exitUsage, nil, "backup", "--db", filepath.Join(root, "nope"), "--to", filepath.Join(root, "b"))
}

// inodes returns the inode of every table (.sst) in dir by name.
func inodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sst") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return m
}

// sharedTables returns how many of the backup's tables are the database's
// own files (the same inode), and how many tables the backup has.
func sharedTables(t *testing.T, db, backup string) (shared, tables int) {
	t.Helper()
	dbIno, bIno := inodes(t, db), inodes(t, backup)
	for name, ino := range bIno {
		if dbIno[name] == ino {
			shared++
		}
	}
	return shared, len(bIno)
}

func TestBackup_OnTheSameFileSystemLinksTheTables(t *testing.T) {
	root := t.TempDir()
	src, backup := filepath.Join(root, "src"), filepath.Join(root, "backup")
	testutil.MakeDB(t, vfs.Default, src, 3, 100)
	var doc backupJSON
	decode(t, mustRun(t, exitOK, nil, "backup", "--db", src, "--to", backup, "--json"), &doc)
	if doc.Mode != "linked" {
		t.Errorf("backup on the same file system: mode %q (%s), want linked", doc.Mode, doc.Why)
	}
	shared, tables := sharedTables(t, src, backup)
	if tables == 0 || shared != tables {
		t.Errorf("%d of the backup's %d tables are the database's files, want all", shared, tables)
	}
}

func TestBackup_CopyIsIndependentOfTheDatabaseAndRestores(t *testing.T) {
	root := t.TempDir()
	src, backup, db := filepath.Join(root, "src"), filepath.Join(root, "backup"), filepath.Join(root, "db")
	want := testutil.MakeDB(t, vfs.Default, src, 3, 100)
	var doc backupJSON
	decode(t, mustRun(t, exitOK, nil, "backup", "--db", src, "--to", backup, "--copy", "--json"), &doc)
	if doc.Mode != "copied" {
		t.Errorf("backup --copy: mode %q (%s), want copied", doc.Mode, doc.Why)
	}
	if shared, tables := sharedTables(t, src, backup); tables == 0 || shared != 0 {
		t.Errorf("backup --copy: %d of its %d tables are the database's files, want none", shared, tables)
	}
	r := mustRun(t, exitOK, nil, "backup", "--db", src, "--to", filepath.Join(root, "backup2"), "--copy")
	if !strings.Contains(r.stdout, "copied") {
		t.Errorf("backup --copy does not say it copied:\n%s", r)
	}
	mustRun(t, exitOK, nil, "restore", "--from", backup, "--db", db)
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Fatalf("restored database has %d keys, the source had %d", len(got), len(want))
	}
}

func TestBackup_ToAnotherFileSystemCopies(t *testing.T) {
	root := t.TempDir()
	src, shm, db := filepath.Join(root, "src"), filepath.Join(root, "shm"), filepath.Join(root, "db")
	want := testutil.MakeDB(t, vfs.Default, src, 3, 100)
	must(t, os.Mkdir(shm, 0o755))
	mountTmpfs(t, shm, "64m")
	backup := filepath.Join(shm, "backup")
	var doc backupJSON
	decode(t, mustRun(t, exitOK, nil, "backup", "--db", src, "--to", backup, "--json"), &doc)
	if doc.Mode != "copied" || !strings.Contains(doc.Why, "another file system") {
		t.Errorf("backup onto a tmpfs: mode %q (%s), want copied because of another file system", doc.Mode, doc.Why)
	}
	mustRun(t, exitOK, nil, "restore", "--from", backup, "--db", db)
	if got := testutil.ReadDB(t, vfs.Default, db); !testutil.Equal(got, want) {
		t.Fatalf("restored database has %d keys, the source had %d", len(got), len(want))
	}
}

func TestBackup_ToWithAMissingParentExits2NamingIt(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	testutil.MakeDB(t, vfs.Default, src, 1, 10)
	missing := filepath.Join(root, "no", "such")
	r := mustRun(t, exitUsage, nil, "backup", "--db", src, "--to", filepath.Join(missing, "backup"))
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], missing) {
		t.Errorf("stderr is not one line naming %s:\n%s", missing, r)
	}
	if _, err := os.Stat(filepath.Join(root, "no")); err == nil {
		t.Errorf("backup made the missing directories above --to")
	}
}

func TestBackup_HelpSaysTheDatabaseMustNotBeOpen(t *testing.T) {
	r := mustRun(t, exitOK, nil, "backup", "--help")
	help := strings.Join(strings.Fields(r.stdout), " ")
	for _, want := range []string{"must not be open in another process", "hard-links the tables", "--copy"} {
		if !strings.Contains(help, want) {
			t.Errorf("backup --help does not say %q:\n%s", want, r.stdout)
		}
	}
}
