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
	args:    "--db DIR --to OUT [--copy] [flags]",
	summary: "make a backup of a Pebble database that restore accepts",
	about: `Make a backup of the Pebble database DIR in OUT, which must not exist: a
Pebble checkpoint with its WAL flushed, checked block by block (Pebble
CheckLevels: a corrupt database gets no backup, exit 1), plus the manifest
KVRFLOW-BACKUP with every file's size and crc32c, written durably last. A
directory without that manifest is never restored, so an interrupted backup
is never mistaken for one, and a restore that checks those checksums
restores tables that were valid when the backup was made.

The database must not be open in another process: backup opens it with
Pebble, which locks it (exit 3 if it is in use). Stop the application first.

OUT's parent directory must exist (exit 2 otherwise). On the same file system
as DIR the backup hard-links the tables (Pebble's checkpoint does): they are
the database's own files, shared until the database compacts them away, and
take no space until then. --copy makes an independent backup instead, every
file copied and fsynced, nothing shared with the database; it is chosen
automatically when OUT is on another file system than DIR. The output (and
--json's "mode") says which: "linked" or "copied".`,
	example: "kvrflow backup --db /var/lib/app/db --to /backups/app-2024-06-01",
	new:     func() runner { return &backupCmd{} },
}

type backupCmd struct {
	common
	db, to string
	copy   bool
}

func (c *backupCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.db, "db", "", "the Pebble database directory `DIR` to back up (required)")
	fs.StringVar(&c.to, "to", "", "the backup directory `OUT` to create; it must not exist (required)")
	fs.BoolVar(&c.copy, "copy", false, "copy every file (fsynced) instead of hard-linking the tables: a backup that shares nothing with the database")
}

// backupDoc is backup's --json document: the BackupResult's fields (dir,
// files, bytes, mode "linked" or "copied", mode_reason) once the backup is
// made.
type backupDoc struct {
	*kvrflow.BackupResult
	exitReport
}

func (d *backupDoc) text(w io.Writer) {
	if d.BackupResult != nil {
		fmt.Fprintf(w, "backup written to %s: %d files, %s, %s (%s)\n", d.Dir, d.Files, humanBytes(d.Bytes), d.Mode, d.Why)
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
	var opts []kvrflow.BackupOption
	if c.copy {
		opts = append(opts, kvrflow.WithCopy())
	}
	res, err := kvrflow.Backup(ctx, c.db, c.to, nil, opts...)
	if err != nil {
		return nil, err
	}
	log.Debug().Str("db", c.db).Str("backup", res.Dir).Str("mode", string(res.Mode)).Int("files", res.Files).Int64("bytes", res.Bytes).Msg("backup done")
	return &backupDoc{BackupResult: res}, nil
}
