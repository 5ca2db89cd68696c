package main

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kvrflow/kvrflow/internal/fault"
)

// TestRestore_ServerCannotOpenTheUncommittedDatabase: between the swap
// and the end of the run, the new database is at DB but the run may
// still roll back; kvrflow holds its LOCK, so a server started in that
// window cannot open it and write to a database about to be removed.
// Here the run then fails (an error at the end of the commit) and rolls back: DB is old.
func TestRestore_ServerCannotOpenTheUncommittedDatabase(t *testing.T) {
	f := newFixture(t, 100, 150)
	w := watch(t, []string{fault.EnvVar + "=fs.after-exchange:delay=2s,restore.commit.end:eio"},
		firedLine("fs.after-exchange", 1), f.restoreArgs()...)
	if !w.await(t) {
		t.Fatalf("%s", w.end(t))
	}
	if db, err := pebble.Open(f.db, &pebble.Options{Logger: quietLogger{}}); err == nil {
		db.Close()
		t.Fatal("a server opened the new database while the run could still roll it back")
	}
	r := w.end(t)
	if r.code != exitRolledBack {
		t.Fatalf("want the run rolled back (exit 1), got %s", r)
	}
	if got := f.which(t); got != "old" {
		t.Fatalf("DB holds the %s database, want the old", got)
	}
}
