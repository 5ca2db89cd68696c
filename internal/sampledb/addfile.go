package sampledb

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/kvrflow/kvrflow/internal/manifest"
)

// AddFile writes into the kvrflow backup dir a file name of size random
// bytes (real blocks, not sparse) and lists it in the backup's manifest,
// resealed: a backup whose restore spends its time copying one large
// file. The database the backup restores does not reference the file. On
// error the file may be written and the manifest not updated; the backup
// then fails its own checks.
func AddFile(dir, name string, size int64, seed uint64) error {
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("add %s to the backup: %w", name, err)
	}
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	rng := rand.NewChaCha8(s)
	buf := make([]byte, 1<<20)
	table := crc32.MakeTable(crc32.Castagnoli)
	var crc uint32
	for n := int64(0); n < size; n += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), size-n)]
		_, _ = rng.Read(b)
		crc = crc32.Update(crc, table, b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("add %s to the backup: %w", name, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("add %s to the backup: %w", name, err)
	}
	mpath := filepath.Join(dir, manifest.Name)
	mf, err := os.Open(mpath)
	if err != nil {
		return fmt.Errorf("add %s to the backup: %w", name, err)
	}
	m, err := manifest.Parse(mf)
	mf.Close()
	if err != nil {
		return fmt.Errorf("add %s to the backup: %w", name, err)
	}
	m.Files = append(m.Files, manifest.File{Name: name, Size: size, CRC32C: crc})
	if err := os.WriteFile(mpath, m.Encode(), 0o644); err != nil {
		return fmt.Errorf("add %s to the backup: %w", name, err)
	}
	return nil
}
