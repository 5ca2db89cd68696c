package steps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
)

// SourceFile is one file to restore.
type SourceFile struct {
	Name     string `json:"name"`   // name in the restored database
	Path     string `json:"-"`      // where it is read from
	Size     int64  `json:"size"`   // expected size
	CRC32C   uint32 `json:"crc32c"` // expected crc32c of the whole file
	Linkable bool   `json:"-"`      // the engine never changes it in place
}

// Source is a backup, as Write needs it: the files to put in staging.
type Source struct {
	Dir    string
	Engine string
	Files  []SourceFile
}

// Bytes returns the sum of the files' sizes.
func (s *Source) Bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// LoadSource reads the backup in dir: its manifest, and the list of what
// is in the directory, which must be exactly the listed files plus the
// manifest. It does not read the files' data (Precheck checksums them).
func LoadSource(fs *fsx.FS, dir string) (*Source, error) {
	fi, err := fs.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrBadSource, err)
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s: not a directory", ErrBadSource, dir)
	}
	mpath := filepath.Join(dir, manifest.Name)
	f, err := fs.Open(mpath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: no %s manifest (make backups with kvrflow backup)", ErrBadSource, dir, manifest.Name)
	}
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(f)
	f.Close()
	if errors.Is(err, manifest.ErrInvalid) {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, mpath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mpath, err)
	}
	if m.Engine != "pebble" {
		return nil, fmt.Errorf("%w: %s: engine %q, this source format holds pebble backups", ErrBadSource, mpath, m.Engine)
	}
	src := &Source{Dir: dir, Engine: m.Engine}
	listed := map[string]bool{manifest.Name: true}
	for _, mf := range m.Files {
		listed[mf.Name] = true
		src.Files = append(src.Files, SourceFile{
			Name: mf.Name, Path: filepath.Join(dir, mf.Name), Size: mf.Size, CRC32C: mf.CRC32C,
			Linkable: strings.HasSuffix(mf.Name, ".sst"),
		})
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if !listed[n] {
			return nil, fmt.Errorf("%w: %s: file not listed in the manifest", ErrBadSource, p)
		}
		link, err := fs.IsSymlink(p)
		if err != nil {
			return nil, err
		}
		if link {
			return nil, fmt.Errorf("%w: %s: symbolic link in the backup (a backup holds only regular files)", ErrBadSource, p)
		}
		if fi, err := fs.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s: not a regular file", ErrBadSource, p)
		}
	}
	return src, nil
}
