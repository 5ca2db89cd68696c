package cluster

import "testing"

// TestAllowed_URLQueryCannotLeaveThePrefix: --allow-from
// s3://bucket/backups/ must not let a plan's source add its own query
// (?endpoint=http://elsewhere sends the fetch, and the node's S3 key id,
// to another server, whose data the node would restore).
func TestAllowed_URLQueryCannotLeaveThePrefix(t *testing.T) {
	for _, c := range []struct {
		source, prefix string
		want           bool
	}{
		{"s3://bucket/backups/n1", "s3://bucket/backups/", true},
		{"s3://bucket/backups-evil/n1", "s3://bucket/backups", false},
		{"s3://bucket/backups/n1?endpoint=http://evil:9000", "s3://bucket/backups/", false},
		{"s3://bucket/backups/n1?region=x", "s3://bucket/backups/", false},
		{"s3://bucket/backups/n1?endpoint=http://minio:9000", "s3://bucket/backups/?endpoint=http://minio:9000", true},
		{"s3://bucket/backups/n1?endpoint=http://evil:9000", "s3://bucket/backups/?endpoint=http://minio:9000", false},
		{"s3://bucket/backups/n1?endpoint=http://minio:9000&endpoint=http://evil:9000", "s3://bucket/backups/?endpoint=http://minio:9000", false},
		{"s3://bucket/backups/../other/n1", "s3://bucket/backups/", false},
		{"s3://bucket/backups/%2e%2e/other/n1", "s3://bucket/backups/", false},
	} {
		if got := allowed(c.source, c.prefix); got != c.want {
			t.Errorf("allowed(%q, %q) = %v, want %v", c.source, c.prefix, got, c.want)
		}
	}
}
