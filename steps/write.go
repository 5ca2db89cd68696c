package steps

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kvrflow/kvrflow/fsm"
)

// WrittenFile is journaled for each file Write put in staging.
type WrittenFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
	Linked bool   `json:"linked,omitempty"`
}

// WriteDetails is journaled when Write is done.
type WriteDetails struct {
	Staging string        `json:"staging"`
	Mode    Mode          `json:"mode"`
	Bytes   int64         `json:"bytes"`
	Files   []WrittenFile `json:"files"`
}

// write builds the new database in the run's staging directory: every
// file copied (crc32c computed on the bytes written, then fsynced) or, in
// link mode, .sst files hard-linked; the directory fsynced; then every
// copied file read back and its crc32c compared with the backup's.
func (e *Env) write(ctx context.Context, _ *fsm.Run) (any, error) {
	staging := e.Layout.Staging(e.RunID)
	if err := e.FS.EnsureDir(e.Layout.Work); err != nil {
		return nil, err
	}
	if err := e.FS.MkdirDurable(staging); err != nil {
		return nil, err
	}
	d := WriteDetails{Staging: staging, Mode: e.mode}
	total := e.src.Bytes()
	var done int64
	onBytes := func(n int) {
		done += int64(n)
		if e.Progress != nil {
			e.Progress(done, total)
		}
	}
	for _, f := range e.src.Files {
		if err := ctx.Err(); err != nil {
			return d, err
		}
		dst := filepath.Join(staging, f.Name)
		if e.mode == ModeLink && f.Linkable {
			if err := e.FS.Link(f.Path, dst); err != nil {
				return d, err
			}
			onBytes(int(f.Size))
			d.Files = append(d.Files, WrittenFile{Name: f.Name, Size: f.Size, CRC32C: f.CRC32C, Linked: true})
			continue
		}
		size, crc, err := e.FS.CopyFile(f.Path, dst, e.buffer(), onBytes)
		if err != nil {
			return d, err
		}
		if size != f.Size || crc != f.CRC32C {
			return d, fmt.Errorf("%w: %s: copied %d bytes with crc32c %08x, the backup lists %d bytes %08x (the source changed while being copied)",
				ErrChecksum, f.Path, size, crc, f.Size, f.CRC32C)
		}
		d.Files = append(d.Files, WrittenFile{Name: f.Name, Size: size, CRC32C: crc})
		d.Bytes += size
	}
	if err := e.FS.SyncDir(staging); err != nil {
		return d, err
	}
	// Read back what was written: the bytes handed to the file system
	// were checksummed, this checks what it returns.
	for _, f := range d.Files {
		if f.Linked {
			continue
		}
		dst := filepath.Join(staging, f.Name)
		size, crc, err := e.FS.Checksum(dst, e.buffer())
		if err != nil {
			return d, err
		}
		if size != f.Size || crc != f.CRC32C {
			return d, fmt.Errorf("%w: %s: read back %d bytes with crc32c %08x, wrote %d bytes %08x", ErrChecksum, dst, size, crc, f.Size, f.CRC32C)
		}
	}
	return d, nil
}
