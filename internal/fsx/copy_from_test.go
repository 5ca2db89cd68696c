package fsx_test

import (
	"bytes"
	"context"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// TestCopyFileFrom_ContinuesACopyAndReportsChunks copies a file in two
// parts, as a resume does: first with chunk reports, stopped by a chunk's
// error after the second chunk; then continued from the last chunk
// reported. The result is the source, and
// the crc32c returned is the whole file's, on memory and on disk.
func TestCopyFileFrom_ContinuesACopyAndReportsChunks(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{{"mem", vfs.NewMem(), "/"}, {"disk", vfs.Default, t.TempDir()}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := fsx.New(tc.fs, nil)
			data := make([]byte, 5<<20+123)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			src, dst := filepath.Join(tc.dir, "src"), filepath.Join(tc.dir, "dst")
			writeAll(t, tc.fs, src, data)
			buf := make([]byte, fsx.BufferSize)
			type chunk struct {
				off int64
				crc uint32
			}
			var chunks []chunk
			stop := bytes.ErrTooLarge
			_, _, err := fs.CopyFileFrom(context.Background(), src, dst, fsx.Want{}, fsx.Resume{Every: 1 << 20, Chunk: func(off int64, crc uint32) error {
				chunks = append(chunks, chunk{off, crc})
				if len(chunks) == 2 {
					return stop
				}
				return nil
			}}, buf, nil)
			if err != stop || len(chunks) != 2 {
				t.Fatalf("first part: %v after %d chunks, want stopped by the second", err, len(chunks))
			}
			last := chunks[1]
			if last.off != 2<<20 || last.crc != crc32.Checksum(data[:last.off], fsx.Castagnoli) {
				t.Fatalf("chunk %+v is not the first %d bytes' crc32c", last, last.off)
			}
			size, crc, err := fs.CopyFileFrom(context.Background(), src, dst, fsx.Want{Size: int64(len(data)), Sized: true},
				fsx.Resume{Offset: last.off, CRC: last.crc}, buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(data)) || crc != crc32.Checksum(data, fsx.Castagnoli) {
				t.Fatalf("continued copy: %d bytes crc32c %08x, want %d %08x", size, crc, len(data), crc32.Checksum(data, fsx.Castagnoli))
			}
			if got := readAll(t, tc.fs, dst); !bytes.Equal(got, data) {
				t.Fatalf("dst differs from src (%d vs %d bytes)", len(got), len(data))
			}
		})
	}
}

func writeAll(t *testing.T, fs vfs.FS, path string, data []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	// A copy: under the race detector (Pebble's invariants) MemFS may
	// scribble over a buffer once written.
	if _, err := f.Write(bytes.Clone(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}
