package steps

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// TestParseWriteNote_OldAndNewNotes: a staging note as journals before
// batches wrote it, and a batch note, are told apart; a batch never
// clears the staging the run recorded.
func TestParseWriteNote_OldAndNewNotes(t *testing.T) {
	for _, tc := range []struct {
		name, details string
		staging       string
		written       int
	}{
		{"staging note of an old journal", `{"staging":"/w/staging-0123456789abcdef-1","staging_id":{"dev":1,"ino":2}}`, "/w/staging-0123456789abcdef-1", 0},
		{"staging note on a file system without inodes", `{"staging":"/w/s"}`, "/w/s", 0},
		{"batch note", `{"written":[{"name":"000001.sst","size":3,"crc32c":7,"ident":{"ino":9,"size":3,"mtime":"2026-01-02T03:04:05Z"}},{"name":"MANIFEST-000001","size":1,"crc32c":1,"reused":"resume"}]}`, "", 2},
		{"empty note", `{}`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, w, err := parseWriteNote([]byte(tc.details))
			if err != nil {
				t.Fatal(err)
			}
			if got := ""; s != nil {
				got = s.Staging
				if got != tc.staging {
					t.Errorf("staging %q, want %q", got, tc.staging)
				}
			} else if tc.staging != "" {
				t.Errorf("no staging, want %q", tc.staging)
			}
			if len(w.Written) != tc.written {
				t.Errorf("%d files, want %d", len(w.Written), tc.written)
			}
		})
	}
	if _, _, err := parseWriteNote([]byte(`{"written":3}`)); err == nil {
		t.Error("a malformed batch note parsed")
	}
}

// TestFileIdent_MatchesOnlyTheSameUnchangedFile: the journaled identity
// survives its JSON round trip and tells a file replaced or written
// since.
func TestFileIdent_MatchesOnlyTheSameUnchangedFile(t *testing.T) {
	now := time.Date(2026, 11, 30, 2, 0, 0, 123456789, time.UTC)
	id := fsx.Ident{ID: fsx.FileID{Dev: 1, Ino: 42}, Size: 100, ModTime: now}
	b, err := json.Marshal(identOf(id))
	if err != nil {
		t.Fatal(err)
	}
	var fi FileIdent
	if err := json.Unmarshal(b, &fi); err != nil {
		t.Fatal(err)
	}
	if !fi.matches(id) {
		t.Fatalf("%s does not match the file it was taken of", b)
	}
	for _, other := range []fsx.Ident{
		{ID: fsx.FileID{Dev: 1, Ino: 43}, Size: 100, ModTime: now},
		{ID: id.ID, Size: 101, ModTime: now},
		{ID: id.ID, Size: 100, ModTime: now.Add(time.Nanosecond)},
	} {
		if fi.matches(other) {
			t.Errorf("%s matches %+v", b, other)
		}
	}
	var none *FileIdent
	if none.matches(id) {
		t.Error("no identity matches a file")
	}
}

// TestReuseResumed_MatchesByOriginWhenTheSourceRecordsNoChecksum: a file
// of a source that records no checksum (a remote checkpoint) is resumed
// only if its origin (path and version) is the one journaled and the
// copy in the trash is unchanged; a file of a source that records one,
// only if the crc32c matches.
func TestReuseResumed_MatchesByOriginWhenTheSourceRecordsNoChecksum(t *testing.T) {
	mem := vfs.NewMem()
	fs := fsx.New(mem, nil)
	e := &Env{FS: fs, Log: zerolog.Nop(), mode: ModeCopy}
	for _, d := range []string{"/trash", "/staging"} {
		if err := mem.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, data string) {
		t.Helper()
		f, err := mem.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("/trash/a", "hello")
	id, err := fs.Ident("/trash/a")
	if err != nil {
		t.Fatal(err)
	}
	src := SourceFile{Name: "a", Path: "s3://b/p/a", Size: 5, NoCRC: true, ETag: "etag1"}
	hello := crc32.Checksum([]byte("hello"), crc32.MakeTable(crc32.Castagnoli))
	journaled := WrittenFile{Name: "a", Size: 5, CRC32C: hello, Ident: identOf(id), Origin: src.origin()}
	buf := make([]byte, 64)
	try := func(f SourceFile, w WrittenFile) bool {
		t.Helper()
		dst := "/staging/a"
		_ = mem.Remove(dst)
		_, ok, err := e.reuseResumed(context.Background(), resumeCand{path: "/trash/a", wf: w}, f, dst, buf)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !try(src, journaled) {
		t.Error("the same origin, unchanged: not resumed")
	}
	other := src
	other.ETag = "etag2"
	if try(other, journaled) {
		t.Error("another version of the object was resumed")
	}
	withCRC := SourceFile{Name: "a", Path: "/backup/a", Size: 5, CRC32C: hello}
	if !try(withCRC, journaled) {
		t.Error("a recorded crc32c equal to the journaled one: not resumed")
	}
	withCRC.CRC32C = hello + 1
	if try(withCRC, journaled) {
		t.Error("another crc32c was resumed")
	}
	time.Sleep(2 * time.Millisecond)
	write("/trash/a", "HELLO") // rewritten in place: another mtime
	if try(src, journaled) {
		t.Error("a copy changed since it was journaled was resumed")
	}
}

// A run whose only note is a forgotten partial file (offset 0: its copy
// failed the checksum) left nothing to resume: its trash is not
// resumable (recover does not keep it, a restore does not look in it).
func TestRunNotes_ForgottenPartialIsNotResumable(t *testing.T) {
	n := runNotes{partial: map[string]PartialFile{"000999.blob": {Name: "000999.blob", Size: 8 << 20}}}
	if n.resumable() {
		t.Error("a run with only a partial at offset 0 is resumable")
	}
	n.partial["000998.blob"] = PartialFile{Name: "000998.blob", Offset: 1 << 20, Size: 8 << 20}
	if !n.resumable() {
		t.Error("a run with a partial at 1 MiB is not resumable")
	}
}
