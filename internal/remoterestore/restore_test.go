package remoterestore

import (
	"context"
	"testing"

	"github.com/kvrflow/kvrflow"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

func TestRestore_FromS3KvrflowBackup(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, s, 300)
	res, err := kvrflow.Restore(context.Background(), kvrflow.Options{DB: f.db, Source: s.url("pebble")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.Outcome != steps.OutcomeCommitted || res.Summary.Mode != string(steps.ModeCopy) {
		t.Fatalf("run %+v summary %+v", res.Run, res.Summary)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("restored database differs from the backup")
	}
}
