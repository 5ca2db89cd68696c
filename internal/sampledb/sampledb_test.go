package sampledb_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// makeSpec writes s to a new memory file system and returns it and the
// database's contents.
func makeSpec(tb testing.TB, s sampledb.Spec) (vfs.FS, map[string]string) {
	tb.Helper()
	fs := vfs.NewMem()
	if err := sampledb.Make(fs, "/db", s); err != nil {
		tb.Fatal(err)
	}
	return fs, testutil.ReadDB(tb, fs, "/db")
}

// The shipped sample backup (testdata/sample/backup) holds the text form:
// its first value, pinned here, must not change.
func TestMake_TextValuesKeepTheShippedSampleForm(t *testing.T) {
	_, kv := makeSpec(t, sampledb.Spec{Seed: 7, Keys: 300, Flushes: 3})
	if len(kv) != 300 {
		t.Fatalf("%d keys, want 300", len(kv))
	}
	for i := range 300 {
		k := fmt.Sprintf("key-%06d", i)
		if !strings.HasPrefix(kv[k], fmt.Sprintf("seed7-%d-", i)) {
			t.Fatalf("%s = %q, want seed7-%d-<hex>", k, kv[k], i)
		}
	}
	if got := kv["key-000000"]; got != "seed7-0-9e2fb1ae31686d3d" {
		t.Errorf("key-000000 = %q: the text form changed (regenerate testdata/sample/backup)", got)
	}
}

func TestMake_SameSpecSameContents_OtherSeedOtherValues(t *testing.T) {
	s := sampledb.Spec{Seed: 3, Keys: 50, ValueSize: 100, Flushes: 2}
	_, a := makeSpec(t, s)
	_, b := makeSpec(t, s)
	if !testutil.Equal(a, b) {
		t.Fatal("the same spec made different databases")
	}
	if v := a["key-000049"]; len(v) != 100 {
		t.Errorf("value of %d bytes, want 100", len(v))
	}
	s.Seed = 4
	_, c := makeSpec(t, s)
	if len(c) != len(a) || testutil.Equal(a, c) {
		t.Errorf("another seed: %d keys, equal %v; want the same keys, other values", len(c), testutil.Equal(a, c))
	}
}

func TestMake_FlushesMakeTablesAndKeysSortAsWritten(t *testing.T) {
	fs, kv := makeSpec(t, sampledb.Spec{Seed: 1, Keys: 1200, ValueSize: 8, Flushes: 4})
	names, err := fs.List("/db")
	if err != nil {
		t.Fatal(err)
	}
	tables := 0
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			tables++
		}
	}
	if tables < 2 {
		t.Errorf("%d tables after 4 flushes: %v", tables, names)
	}
	if _, ok := kv["key-001199"]; !ok || len(kv) != 1200 {
		t.Errorf("%d keys; key-001199 present %v", len(kv), ok)
	}
}

func TestMake_WideKeyNumbersStayInOrder(t *testing.T) {
	_, kv := makeSpec(t, sampledb.Spec{Seed: 1, Keys: 1_000_001, ValueSize: 1})
	if _, ok := kv["key-1000000"]; !ok {
		t.Fatal("key-1000000 missing")
	}
	if _, ok := kv["key-0000000"]; !ok {
		t.Fatal("key numbers are not padded to the widest: key-0000000 missing")
	}
}
