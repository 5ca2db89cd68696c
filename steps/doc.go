// Package steps holds the restore workflow (Restore) and its steps:
// Precheck, Clean, Write, Verify, Commit, Finish and Rollback, one file
// each, all doing their file-system work through the seam in
// internal/fsx.
//
// # Crash safety
//
//   - Precheck changes nothing.
//   - Clean removes only staging-N and old-N directories of runs the
//     journal shows ended for this database; everything else it finds is
//     moved into quarantine.
//   - Write builds the new database in DB.kvrflow/staging-N, checking each
//     copy's crc32c against the backup's as it is written, fsyncing every
//     file and the directory (at --verify full, reading each copy back
//     from the device). It journals completed files in batches
//     (WrittenBatch), each after the files and the staging directory were
//     fsynced, and hard-links rather than transfers a file proven
//     identical: one an interrupted run journaled complete, in its trash
//     (resume), or a table of the database being replaced (delta); the
//     link is checked to be the file checked (see reuse.go, resume.go).
//   - Commit journals its plan, then swaps staging and DB with
//     renameat2(RENAME_EXCHANGE), or renames DB to old-N and staging to DB.
//   - Finish (after the commit point) removes the old database.
//   - Rollback reads the last commit plan and undoes what the disk shows
//     was done, then removes staging, or, for a run interrupted or whose
//     Write journaled complete files (and not on a full disk), moves it
//     to its trash name in one rename for a resume.
//
// Every step may be interrupted anywhere and run again; Finish and
// Rollback decide each action from what is on disk now.
//
// # Caveats
//
// Each byte of the backup is read once at the default verification level:
// by Write for a file it copies, by Precheck for a table it hard-links. So
// a corrupt file to be copied is found while Write copies it, after
// staging was begun: the run is rolled back and the error is still
// ErrBadSource. VerifySize reads no hard-linked table's data at all. A
// plain checkpoint records no checksums: Precheck measures each file it
// will copy, so those are read twice.
//
// Below VerifyFull no block of a RocksDB table is read by a check (ldb
// checkconsistency reads none): a checkpoint's table that was corrupt
// before Precheck measured it is restored. At VerifyFull sst_dump reads
// every .sst (not .blob or legacy .ldb files).
//
// Only regular files are read from a source, reached through directories
// only: OpenSource refuses anything else with ErrBadSource before it opens
// anything, and the copy checks the file it opened (type, inode, at most
// its size + 1 byte). See DESIGN.md, "File types in a source".
//
// A source in an object store (a URL: IsURL) is listed once by Precheck,
// which reads only the manifest or meta file; Write streams each object
// into its staging file (fetch), with If-Match on the listed ETag, and
// compares the crc32c computed as the bytes arrive before the fsync. A
// remote checkpoint is read once: its crc32c is measured as it arrives
// and journaled. Staging is local, so the crash safety above holds as it
// is; nothing is written to the bucket. See DESIGN.md, "Remote sources".
// Delta shares inodes between the database being replaced and the new
// one (and the kept one, with KeepOld): safe because neither engine
// changes a table in place. The checks of kept and trash directories
// compare names and sizes, which links do not change. A large file
// resumed mid-way is continued from its last journaled offset once its
// prefix in the trash checks by crc32c; its name in the trash is removed
// first, so the trash keeps only what its rollback journaled.
//
// Link mode hard-links only .sst files, which Pebble never changes in
// place; the MANIFEST, WAL, OPTIONS and marker files are always copied, or
// the restored database would write into the backup.
package steps
