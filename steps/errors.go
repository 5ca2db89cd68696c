package steps

import "errors"

var (
	// ErrBadSource is returned when the source is not a valid backup: by
	// Precheck for a source that is missing, not a directory, has no or a
	// corrupt manifest, a file missing, of the wrong size or checksum, an
	// unlisted file, or anything but a regular file (a FIFO, device,
	// socket, directory or symbolic link) where a file is listed or read;
	// by Write for a file whose bytes, read as they are copied, do not
	// match the backup's checksum, or that grew past its listed size (the
	// run is rolled back).
	ErrBadSource = errors.New("invalid backup")

	// ErrBadPath is returned when the paths given cannot be restored: the
	// source and the database overlap, the database's parent is missing or
	// not writable, or the database path is not a directory.
	ErrBadPath = errors.New("bad path")

	// ErrBadOption is returned when an option of the run has a value
	// kvrflow does not know (a verification level, a mode).
	ErrBadOption = errors.New("bad option")

	// ErrNoSpace is returned by Precheck when the file system holding the
	// database has less free space than the restore needs plus a margin.
	ErrNoSpace = errors.New("not enough free space")

	// ErrInUse is returned when the database is open by another process
	// (it holds the database's LOCK file) or another kvrflow works on it.
	ErrInUse = errors.New("in use by another process")

	// ErrChecksum is returned by Write when the bytes copied or read back
	// do not match the checksums expected (a source without recorded
	// checksums changed after Precheck measured it, or the disk returned
	// other data than was written). A copy that does not match a checksum
	// the backup recorded matches both ErrChecksum and ErrBadSource.
	ErrChecksum = errors.New("checksum mismatch")

	// ErrVerify is returned by Verify when the staged database does not
	// open or its check fails.
	ErrVerify = errors.New("staged database failed verification")

	// ErrInconsistent is returned when what is on disk contradicts the
	// journal (for example the database directory is neither the old nor
	// the new one): kvrflow stops and touches nothing.
	ErrInconsistent = errors.New("disk state contradicts the journal")
)

// ErrForeign is returned by Precheck when kvrflow's directory holds run
// directories of another journal: that journal has a run in flight on the
// same database, which only it can finish or undo.
var ErrForeign = errors.New("another journal's run is in flight")
