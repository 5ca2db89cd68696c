package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/remote"
)

var backupCommand = &command{
	name:    "backup",
	args:    "--db DIR --to OUT|URL [--copy] [--rate-limit RATE] [flags]",
	summary: "make a backup of a Pebble database that restore accepts, on disk or in object storage",
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
--json's "mode") says which: "linked" or "copied".

--to s3://BUCKET/PREFIX (also gs://, azblob://, file:///DIR) uploads the
backup to object storage instead: the checkpoint is made in DIR.kvrflow
(hard links, under kvrflow's lock on DIR), every file is uploaded, several at
once and large ones in parts, the objects are listed again and their sizes
checked, and the manifest is put last: a prefix without it is no backup, and
restore reads nothing from one. A backup is never overwritten: a prefix that
holds a manifest is refused (exit 2, nothing written). A prefix that holds
objects but no manifest is an interrupted upload: run the same command again
and it resumes from the checkpoint the interrupted run kept in DIR.kvrflow,
keeping every object whose size and crc32c (read back) are the file's; any
other object under the prefix is refused, named (exit 2), never overwritten.
On success the local checkpoint is removed. Credentials and endpoint are read
as the AWS tools read them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL(_S3), AWS_PROFILE, the shared
files), or from the URL's query (endpoint, use_path_style, region, profile);
no secret is ever printed. Transient errors (5xx, throttling, resets,
timeouts) are retried with backoff; a refused request (403), a missing bucket
or a bad URL is exit 2; an upload that fails otherwise is exit 1, and keeps
its checkpoint for the re-run.`,
	example: `kvrflow backup --db /var/lib/app/db --to /backups/app-2024-06-01
  kvrflow backup --db /var/lib/app/db --to s3://backups/app/2024-06-01 --rate-limit 100MiB/s
  AWS_ENDPOINT_URL=http://127.0.0.1:7070 kvrflow backup --db /var/lib/app/db --to 's3://backups/app/1?use_path_style=true'`,
	new: func() runner { return &backupCmd{} },
}

type backupCmd struct {
	common
	db, to    string
	copy      bool
	rateLimit string
}

func (c *backupCmd) flags(fs *flag.FlagSet) {
	c.define(fs, false)
	fs.StringVar(&c.db, "db", "", "the Pebble database directory `DIR` to back up (required)")
	fs.StringVar(&c.to, "to", "", "the backup directory `OUT` to create, which must not exist, or the object store URL (s3://BUCKET/PREFIX, gs://, azblob://, file:///DIR) to upload to, which must hold no backup (required)")
	fs.StringVar(&c.rateLimit, "rate-limit", "", "with --to URL: cap the upload at `RATE` bytes per second (100MiB/s, 10MB/s, 512KiB/s; default no limit)")
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
	if isURL(c.to) {
		return c.upload(ctx, o)
	}
	if c.rateLimit != "" {
		return nil, usagef("--rate-limit applies to a backup to object storage (--to s3://...), not to %s", c.to)
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

// isURL reports whether --to names an object store (scheme://...) rather
// than a directory.
func isURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && scheme != "" && !strings.ContainsAny(scheme, "/.")
}

// remoteBackupDoc is backup --to URL's --json document: the
// RemoteBackupResult's fields (url without secrets, files, bytes, created,
// resumed, uploaded_files, uploaded_bytes, kept_files, kept_bytes,
// removed_leftovers, unproven_leftovers) once the backup is whole.
type remoteBackupDoc struct {
	*kvrflow.RemoteBackupResult
	exitReport
}

func (d *remoteBackupDoc) text(w io.Writer) {
	r := d.RemoteBackupResult
	if r == nil {
		return
	}
	how := "uploaded"
	if r.Resumed {
		how = fmt.Sprintf("resumed an interrupted upload (checkpoint of %s): %d files kept, %s uploaded", r.Created.Format(time.RFC3339), r.KeptFiles, humanBytes(r.UploadedBytes))
	} else if r.KeptFiles > 0 {
		how = fmt.Sprintf("%d files already there kept, %s uploaded", r.KeptFiles, humanBytes(r.UploadedBytes))
	}
	fmt.Fprintf(w, "backup written to %s: %d files, %s, %s\n", r.URL, r.Files, humanBytes(r.Bytes), how)
	for _, p := range r.Unproven {
		fmt.Fprintf(w, "left in place (not provably kvrflow's): %s\n", p)
	}
}

// uploadMemoryLimit is the Go heap's soft limit during backup --to URL,
// unless GOMEMLIMIT is set.
const uploadMemoryLimit = 48 << 20

// upload is backup --to URL.
func (c *backupCmd) upload(ctx context.Context, o *stdio) (document, error) {
	if c.copy {
		return nil, usagef("--copy applies to a backup directory; a backup to object storage is always a copy")
	}
	rate, err := parseRate(c.rateLimit)
	if err != nil {
		return nil, asUsage(err)
	}
	if o.getenv("GOMEMLIMIT") == "" {
		// The uploads' part buffers are up to 2 files × (Concurrency+1)
		// parts of 8 MiB, each read with io.ReadAll by S3's transfer
		// manager (twice that while it grows); the soft limit makes the
		// garbage collector run often instead of letting the heap double.
		// Measured (256 MiB database, versitygw on loopback): peak RSS
		// 118-121 MiB with 48 MiB, 143-159 MiB with 100 MiB, at the same
		// speed; about 74 MiB of it is the checkpoint's CheckLevels.
		debug.SetMemoryLimit(uploadMemoryLimit)
	}
	bar := newProgress(o, !c.json && o.stderrIsTerminal())
	log, err := c.loggerTo(bar, o.stderrIsTerminal())
	if err != nil {
		return nil, err
	}
	res, err := kvrflow.BackupTo(ctx, c.db, c.to, kvrflow.RemoteBackupOptions{
		Remote:   remote.Options{RateLimit: rate, Concurrency: 2},
		Progress: func(done, total int64) { bar.update(done, total, "bytes") },
		Log:      log,
	})
	bar.close()
	if err != nil {
		return nil, err
	}
	log.Debug().Str("db", c.db).Str("url", res.URL).Int("files", res.Files).Int64("bytes", res.Bytes).Int64("uploaded_bytes", res.UploadedBytes).Msg("backup uploaded")
	return &remoteBackupDoc{RemoteBackupResult: res}, nil
}
