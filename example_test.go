package kvrflow_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kvrflow/kvrflow"
)

// A server recovers at start-up, before it opens its database, and later
// restores a backup into it.
func Example() {
	root, _ := os.MkdirTemp("", "kvrflow-example")
	defer os.RemoveAll(root)
	dir := filepath.Join(root, "db")
	backup := filepath.Join(root, "backup")
	ctx := context.Background()

	// Make a database and back it up.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_ = db.Set([]byte("greeting"), []byte("hello"), pebble.Sync)
	_ = db.Close()
	if _, err := kvrflow.Backup(ctx, dir, backup, nil); err != nil {
		log.Fatal(err)
	}

	// At start-up: finish or undo whatever a crash left in flight.
	if _, err := kvrflow.Recover(ctx, kvrflow.Options{DB: dir}); err != nil {
		log.Fatal(err)
	}

	// Restore the backup over the database (which must not be open).
	res, err := kvrflow.Restore(ctx, kvrflow.Options{DB: dir, Source: backup})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("run", res.Run.ID, res.Run.Outcome)
	// Output: run 1 committed
}
