package remote

import (
	"context"
	"testing"
	"time"

	"github.com/kvrflow/kvrflow/internal/s3test"
)

// The package's S3 server and fault proxy are s3test's, under the names
// these tests were written with.
const (
	gwAccess = s3test.Access
	gwSecret = s3test.Secret
	gwRegion = s3test.Region
)

type (
	gateway    = s3test.Gateway
	faultProxy = s3test.Proxy
	rule       = s3test.Rule
	fault      = s3test.Fault
)

const (
	fault500      = s3test.Fault500
	faultSlowDown = s3test.FaultSlowDown
	fault403      = s3test.Fault403
	fault404      = s3test.Fault404
	faultReset    = s3test.FaultReset
	faultTruncate = s3test.FaultTruncate
	faultShort    = s3test.FaultShort
	faultStall    = s3test.FaultStall
	faultFlip     = s3test.FaultFlip
	faultNoRange  = s3test.FaultNoRange
)

func TestMain(m *testing.M) { s3test.Main(m) }

func startGateway(t testing.TB) *gateway                  { return s3test.Start(t) }
func awsEnv(t testing.TB)                                 { s3test.AWSEnv(t) }
func newBucket(t testing.TB, gw *gateway) string          { return s3test.NewBucket(t, gw) }
func s3URL(endpoint, bucket, prefix string) string        { return s3test.URL(endpoint, bucket, prefix) }
func newFaultProxy(t testing.TB, gw *gateway) *faultProxy { return s3test.NewProxy(t, gw) }

// testOptions are small ranges and quick retries, for small objects.
func testOptions() Options {
	return Options{
		GetSize:       64 << 10,
		PartSize:      64 << 10,
		Concurrency:   3,
		RetryAttempts: 4,
		RetryBudget:   10,
		RetryInitial:  10 * time.Millisecond,
		RetryMax:      50 * time.Millisecond,
		IdleTimeout:   2 * time.Second,
	}
}

// openS3 opens bucket/prefix on endpoint with the gateway's credentials.
func openS3(t testing.TB, endpoint, bucket, prefix string, o Options) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, s3URL(endpoint, bucket, prefix), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
