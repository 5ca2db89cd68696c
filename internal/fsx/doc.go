// Package fsx is kvrflow's file-system seam: one narrow type, FS, through
// which the steps do every file operation, over a Pebble vfs.FS: the real
// disk, vfs.NewCrashableMem (power loss) or vfs/errorfs (failing
// operation N).
//
// # Crash safety
//
// The durable helpers fsync what they change: CopyFile syncs the file,
// MkdirDurable the new directory and its parent, RenameDurable and
// Exchange both parents (the destination's first, so that an entry is
// never lost between two directories), RemoveAllDurable the parent,
// WriteFileDurable the temporary file (under a name no file had, removed
// on failure) and then the directory. Every fsync's failure matches
// ErrSync: it is final (the kernel may have dropped the pages it could not
// write), and the steps never retry it. RemoveEmptyDir removes a directory
// only if it is empty (no data can be lost), so it needs no proof of
// ownership; DirID gives the identity (device, inode) by which kvrflow
// proves a directory is its own.
//
// # Caveats
//
// Exchange and FileID work only over the real disk (they need a kernel
// and inode numbers); elsewhere they return ErrExchangeUnsupported and
// ErrNoFileID, and the steps use two renames instead; DisableExchange
// forces the two renames on the real disk too (tests of that plan). DirID
// returns nil on the in-memory file systems, which have no inodes. CheckRegular and
// Lstat see file types on the real disk also under a wrapper (errorfs);
// CopyFile, Checksum and ReadTail read only regular files, opened on the
// disk itself with O_NOFOLLOW|O_NONBLOCK (under a wrapper the open goes
// through it, and a FIFO swapped in after the lstat could block it).
// Named fault points (package internal/fault) are hit around each durable
// operation.
package fsx
