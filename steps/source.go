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
	Name     string `json:"name"`           // name in the restored database
	From     string `json:"from,omitempty"` // path in the source, when not Name
	Path     string `json:"-"`              // where it is read from
	Size     int64  `json:"size"`           // expected size
	CRC32C   uint32 `json:"crc32c"`         // expected crc32c of the whole file
	Linkable bool   `json:"-"`              // the engine never changes it in place
	// NoSize and NoCRC mark a size or checksum the source does not record:
	// Precheck measures it and the journal keeps it.
	NoSize bool `json:"-"`
	NoCRC  bool `json:"-"`
	// Measured says Size and CRC32C were measured by Precheck, not
	// recorded by the source: a copy that differs means the source
	// changed while it was copied.
	Measured bool `json:"-"`
	// Version names this version of the file at its origin where the
	// source records no checksum (a remote object's ETag); empty for a
	// local file, whose inode and modification time are used (see
	// origin).
	Version string `json:"-"`
	// ident is the file as Precheck checked it, for a file Write
	// hard-links: the link must be to that same, unchanged file.
	ident fsx.Ident
}

// Kinds of source.
const (
	KindKvrflow    = "kvrflow-backup" // a Pebble backup made by kvrflow backup
	KindRocksdb    = "rocksdb-backup" // a RocksDB BackupEngine directory
	KindCheckpoint = "checkpoint"     // a plain database checkpoint, no manifest
)

// Engines.
const (
	EnginePebble  = "pebble"
	EngineRocksDB = "rocksdb"
	EngineAuto    = "auto"
)

// Source is a backup, as Write needs it: the files to put in staging.
type Source struct {
	Dir      string
	Kind     string
	Engine   string
	BackupID uint64 // the RocksDB backup restored
	Files    []SourceFile
}

// Bytes returns the sum of the files' sizes.
func (s *Source) Bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// OpenSource reads the source in dir, of the given engine (pebble,
// rocksdb, or auto: detected): a kvrflow backup (it has KVRFLOW-BACKUP), a
// RocksDB BackupEngine directory (it has meta/), or a plain RocksDB
// checkpoint (it has CURRENT). A Pebble directory without the manifest is
// refused. backupID picks a
// RocksDB backup; 0 means the latest. It does not read the files' data
// (Precheck checksums them).
//
// Only regular files are read, and only through directories: dir itself
// may be a symbolic link (it is resolved once, and the Source's paths are
// under the resolved directory), but a FIFO, device, socket, directory or
// symbolic link where a file is listed or read (the manifest, a meta
// file, a checkpoint's files), or a symbolic link on the way to one, is
// ErrBadSource naming the path and what it is, found before anything is
// opened.
func OpenSource(fs *fsx.FS, dir, engine string, backupID uint64) (*Source, error) {
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
	// The directory given may be reached through a symbolic link: resolve
	// it once. Below it, every path to a file read is checked to be
	// directories and a regular file, before it is opened.
	if dir, err = fs.ResolveRoot(dir); err != nil {
		return nil, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	pebbleMarker := false
	for _, n := range names {
		has[n] = true
		pebbleMarker = pebbleMarker || strings.HasPrefix(n, "marker.manifest.")
	}
	var src *Source
	switch {
	case has[manifest.Name]:
		src, err = loadKvrflowBackup(fs, dir, names)
	case has["meta"] && (has["private"] || has["shared_checksum"] || has["shared"]):
		src, err = loadRocksBackup(fs, dir, backupID)
	case pebbleMarker:
		// A Pebble directory without the manifest may be a half-written
		// backup (the manifest is written last): never trusted.
		return nil, fmt.Errorf("%w: %s: no %s manifest: a Pebble checkpoint without one may be incomplete (make backups with kvrflow backup)", ErrBadSource, dir, manifest.Name)
	case has["CURRENT"]:
		src, err = loadCheckpoint(fs, dir, names, EngineRocksDB)
	default:
		return nil, fmt.Errorf("%w: %s: no %s manifest, no RocksDB backup meta/ directory, and not a database checkpoint", ErrBadSource, dir, manifest.Name)
	}
	if err != nil {
		return nil, err
	}
	if engine != "" && engine != EngineAuto && engine != src.Engine {
		return nil, fmt.Errorf("%w: %s: --engine %s, but the source is a %s %s", ErrBadSource, dir, engine, src.Engine, src.Kind)
	}
	for _, f := range src.Files {
		rel := f.From
		if rel == "" {
			rel = f.Name
		}
		if err := checkRegular(fs, dir, rel); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// loadKvrflowBackup reads a kvrflow backup: its manifest, and the list of
// what is in the directory, which must be exactly the listed files plus
// the manifest.
func loadKvrflowBackup(fs *fsx.FS, dir string, names []string) (*Source, error) {
	mpath := filepath.Join(dir, manifest.Name)
	if err := checkRegular(fs, dir, manifest.Name); err != nil {
		return nil, err
	}
	f, err := fs.OpenRegular(mpath)
	if err != nil {
		return nil, sourceErr(err)
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
	src := &Source{Dir: dir, Kind: KindKvrflow, Engine: m.Engine}
	listed := map[string]bool{manifest.Name: true}
	for _, mf := range m.Files {
		listed[mf.Name] = true
		src.Files = append(src.Files, SourceFile{
			Name: mf.Name, Path: filepath.Join(dir, mf.Name), Size: mf.Size, CRC32C: mf.CRC32C,
			Linkable: strings.HasSuffix(mf.Name, ".sst"),
		})
	}
	for _, n := range names {
		if !listed[n] {
			return nil, fmt.Errorf("%w: %s: file not listed in the manifest", ErrBadSource, filepath.Join(dir, n))
		}
	}
	return src, nil
}
