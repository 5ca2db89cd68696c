// Package kvrflow restores a database directory from a backup so that a
// crash, a kill or an I/O error at any instant leaves either the old
// database or the new one, complete: never a mix, never nothing.
//
// A server calls Recover at start-up, before it opens its database, and
// Restore to replace the database with a backup made by Backup:
//
//	if _, err := kvrflow.Recover(ctx, kvrflow.Options{DB: dir}); err != nil {
//		return err // the journal or the disk needs an operator
//	}
//	res, err := kvrflow.Restore(ctx, kvrflow.Options{DB: dir, Source: backup})
//
// Every restore is a run of the workflow steps.Restore, driven by the
// engine in package fsm, each transition made durable in the journal
// (package journal) before the next step acts. Everything kvrflow creates
// lives in DB + ".kvrflow" on the same file system: the journal, the
// staging directory, the quarantine.
//
// # Crash safety
//
// Before the commit point (the journal record commit -committed-> finish)
// recovery rolls a run back, after it recovery finishes it; DESIGN.md has
// the table of every state and what recovery does there. kvrflow deletes
// only directories the journal proves to be its own garbage; any other
// leftover is moved into DB.kvrflow/quarantine.
//
// # Caveats
//
// One kvrflow at a time works on a database: a second one fails at once
// with an error matching steps.ErrInUse. The database must not be open
// while it is restored (its LOCK file is probed and held). The journal is
// a bbolt file on the real disk even when Options.FS is a simulated one.
package kvrflow
