// Package remoterestore holds the tests of restores from object storage
// (kvrflow restore --from s3://...) against a real S3 server (versitygw,
// internal/s3test): every source kind, bad input, network faults through
// the fault proxy, kill -9 then recover, secrets kept out of the journal,
// the log and --json, and the peak RSS of a large restore. They run the
// library (kvrflow.Restore) and the kvrflow binary, built once by
// TestMain. The package has no code of its own: its tests live apart so
// that they own the one versitygw their binary starts.
package remoterestore
