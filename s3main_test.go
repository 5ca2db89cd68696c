package kvrflow

import (
	"testing"

	"github.com/kvrflow/kvrflow/internal/s3test"
)

// TestMain stops the package's S3 test server (versitygw, started by the
// first test that needs it) once the tests are done.
func TestMain(m *testing.M) { s3test.Main(m) }
