// Package sampledb makes sample Pebble databases with known contents: the
// small databases of the tests, the old database and the sample backup of
// kvrflow chaos, and the large databases of the benchmarks (bench/gen).
//
// A Spec fixes everything Make writes: the same Spec gives the same keys
// and values (not the same files: Pebble's file numbers and compactions
// may differ). Keys are "key-" and the key's number, zero-padded to six
// digits or more, so they sort as they are written.
//
// # Crash safety
//
// Make's last write is synced, which syncs the write-ahead log and so
// every key before it: a power loss after Make returns (a crash clone of
// vfs.NewCrashableMem) keeps the whole database, provided its directory's
// parents were synced (see testutil.MkdirDurable).
//
// # Caveats
//
// Make adds to a database that exists; it does not empty it first. The
// values of a Spec with a ValueSize are random bytes (incompressible, as
// the benchmarks need); those of the zero ValueSize are short text, the
// form of the sample backup shipped in testdata/sample/backup, which
// Make must keep producing unchanged.
package sampledb
