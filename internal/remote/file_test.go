package remote

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileURL_ListCopyPutIfAbsent(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	s, err := Open(ctxT(t, 5*time.Second), "file://"+dir, o)
	if err != nil {
		t.Fatalf("Open file://: %v", err)
	}
	defer s.Close()
	if _, err := s.List(ctxT(t, 5*time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("List of an empty directory = %v, want ErrNotFound", err)
	}
	data := pattern(5*int(o.GetSize)+17, 9)
	if _, err := s.PutIfAbsent(ctxT(t, 5*time.Second), "sub/obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctxT(t, 5*time.Second), "sub/obj", bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "sub", "obj")); !bytes.Equal(got, data) {
		t.Fatal("the file does not hold the bytes put")
	}
	objs, err := s.List(ctxT(t, 5*time.Second))
	if err != nil || len(objs) != 1 || objs[0].Key != "sub/obj" || objs[0].Size != int64(len(data)) {
		t.Fatalf("List = %+v, %v", objs, err)
	}
	want := objs[0].Want()
	want.CRC32C, want.CheckCRC = crc32.Checksum(data, castagnoli), true
	var buf bytes.Buffer
	if _, _, err := s.Copy(ctxT(t, 5*time.Second), "sub/obj", &buf, want); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Copy = %v", err)
	}
	// Changed behind the listing: a byte longer.
	os.WriteFile(filepath.Join(dir, "sub", "obj"), append(data, 1), 0o644)
	if _, _, err := s.Copy(ctxT(t, 5*time.Second), "sub/obj", &buf, want); !errors.Is(err, ErrChanged) {
		t.Fatalf("Copy of a grown file = %v, want ErrChanged", err)
	}
	if _, _, err := s.Copy(ctxT(t, 5*time.Second), "missing", &buf, Want{Size: 3}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Copy of a missing file = %v, want ErrNotFound", err)
	}
}

func TestFileURL_MissingDirectoryIsErrNotFound(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Open(ctxT(t, 5*time.Second), "file://"+missing, Options{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a missing directory = %v, want ErrNotFound", err)
	}
	checkMessage(t, err, missing)
}
