package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/kvrflow/kvrflow"
)

var backupCommand = &command{
	name:    "backup",
	args:    "--db DIR --to OUT [flags]",
	summary: "make a backup of a Pebble database that restore accepts",
	about: `Make a backup of the Pebble database DIR in OUT, which must not exist: a
Pebble checkpoint with its WAL flushed, checked block by block (Pebble
CheckLevels: a corrupt database gets no backup, exit 1), plus the manifest
KVRFLOW-BACKUP with every file's size and crc32c, written durably last. A
directory without that manifest is never restored, so an interrupted backup
is never mistaken for one, and a restore that checks those checksums
restores tables that were valid when the backup was made.`,
	example: "kvrflow backup --db /var/lib/app/db --to /backups/app-2024-06-01",
	new:     func() runner { return &backupCmd{} },
}

type backupCmd struct {
	common
	db, to string
}

func (c *backupCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.db, "db", "", "the Pebble database directory `DIR` to back up (required)")
	fs.StringVar(&c.to, "to", "", "the backup directory `OUT` to create; it must not exist (required)")
}

// backupDoc is backup's --json document: the BackupResult's fields (dir,
// files, bytes) once the backup is made.
type backupDoc struct {
	*kvrflow.BackupResult
	exitReport
}

func (d *backupDoc) text(w io.Writer) {
	if d.BackupResult != nil {
		fmt.Fprintf(w, "backup written to %s: %d files, %s\n", d.Dir, d.Files, humanBytes(d.Bytes))
	}
}

func (c *backupCmd) run(ctx context.Context, o *stdio, args []string) (document, error) {
	if len(args) > 0 {
		return nil, usagef("unexpected argument %q", args[0])
	}
	if err := need("--db", c.db, "--to", c.to); err != nil {
		return nil, err
	}
	log, err := c.logger(o)
	if err != nil {
		return nil, err
	}
	res, err := kvrflow.Backup(ctx, c.db, c.to, nil)
	if err != nil {
		return nil, err
	}
	log.Debug().Str("db", c.db).Str("backup", res.Dir).Int("files", res.Files).Int64("bytes", res.Bytes).Msg("backup done")
	return &backupDoc{BackupResult: res}, nil
}
