package steps

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
)

// ErrBadMeta is returned (wrapped with the line and cause) by
// ParseRocksMeta for a BackupEngine meta file it cannot trust.
var ErrBadMeta = errors.New("invalid RocksDB backup meta file")

// Limits of ParseRocksMeta, so a hostile meta file cannot exhaust memory.
const (
	maxMetaLine  = 64 << 10
	maxMetaFiles = manifest.MaxFiles
)

// RocksMetaFile is one file entry of a BackupEngine meta file.
type RocksMetaFile struct {
	Path    string // relative to the backup directory
	CRC32C  uint32
	HasCRC  bool
	Size    int64
	HasSize bool
}

// RocksMeta is a parsed BackupEngine meta file (meta/<id>).
type RocksMeta struct {
	Schema    int // 1, or 2 for "schema_version 2.x"
	Timestamp int64
	Sequence  uint64
	AppMeta   string // hex, as stored
	Files     []RocksMetaFile
}

// ParseRocksMeta parses a BackupEngine meta file. Schema 1 is: timestamp,
// sequence number, optional "metadata <hex>", the file count, then one
// line "<path> crc32 <decimal crc32c>" per file. Schema 2 starts with
// "schema_version 2[.x]", may add meta fields before the count and fields
// per file ("size N", "temp T", others ignored), and a "// FOOTER" with
// footer fields. A field named ni::* (non-ignorable) that this reader does
// not know is refused, as RocksDB itself does; that includes
// "<path> ni::excluded true" entries, files a backup excluded and that
// kvrflow cannot restore.
func ParseRocksMeta(r io.Reader) (*RocksMeta, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxMetaLine)
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadMeta, line, fmt.Sprintf(format, args...))
	}
	m := &RocksMeta{Schema: 1}
	l, ok := next()
	if ok && strings.HasPrefix(l, "schema_version ") {
		v := strings.TrimPrefix(l, "schema_version ")
		if v != "2" && !strings.HasPrefix(v, "2.") {
			return nil, bad("unsupported schema version %q", v)
		}
		m.Schema = 2
		l, ok = next()
	}
	if !ok {
		return nil, scanErr(sc, line, "empty meta file")
	}
	ts, err := strconv.ParseInt(l, 10, 64)
	if err != nil {
		return nil, bad("bad timestamp %q", l)
	}
	m.Timestamp = ts
	if l, ok = next(); !ok {
		return nil, scanErr(sc, line, "no sequence number")
	}
	if m.Sequence, err = strconv.ParseUint(l, 10, 64); err != nil {
		return nil, bad("bad sequence number %q", l)
	}
	count := -1
	for count < 0 {
		if l, ok = next(); !ok {
			return nil, scanErr(sc, line, "no file count")
		}
		if l == "" {
			return nil, bad("unexpected empty line")
		}
		if l[0] >= '0' && l[0] <= '9' {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > maxMetaFiles {
				return nil, bad("bad file count %q", l)
			}
			count = n
			break
		}
		name, data, found := strings.Cut(l, " ")
		switch {
		case !found:
			return nil, bad("expected the file count or a meta field")
		case name == "metadata":
			m.AppMeta = data
		case m.Schema < 2:
			return nil, bad("unknown field %q in a schema 1 meta file", name)
		case strings.HasPrefix(name, "ni::"):
			return nil, bad("unknown non-ignorable meta field %q (written by a newer RocksDB?)", name)
		}
	}
	for len(m.Files) < count {
		if l, ok = next(); !ok {
			return nil, scanErr(sc, line, fmt.Sprintf("%d files listed, the count says %d", len(m.Files), count))
		}
		f, err := parseRocksFileLine(l, m.Schema)
		if err != nil {
			return nil, bad("%v", err)
		}
		m.Files = append(m.Files, f)
	}
	// After the files: nothing, or (schema 2) a footer; anything else is
	// one entry too many.
	if l, ok = next(); ok {
		if m.Schema >= 2 && l == "// FOOTER" {
			for {
				if l, ok = next(); !ok {
					break
				}
				name, _, found := strings.Cut(l, " ")
				if !found {
					return nil, bad("expected a footer field")
				}
				if strings.HasPrefix(name, "ni::") {
					return nil, bad("unknown non-ignorable footer field %q", name)
				}
			}
		} else {
			fields := strings.Split(l, " ")
			if m.Schema >= 2 && len(fields) >= 3 && strings.HasPrefix(fields[1], "ni::") {
				if fields[1] == "ni::excluded" {
					return nil, bad("file %q is excluded from the backup (kept outside it); kvrflow cannot restore it", fields[0])
				}
				return nil, bad("unknown non-ignorable field %q for %q", fields[1], fields[0])
			}
			return nil, bad("more file entries than the count %d", count)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(sc, line, "")
	}
	return m, nil
}

func scanErr(sc *bufio.Scanner, line int, what string) error {
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: line %d longer than %d bytes", ErrBadMeta, line+1, maxMetaLine)
		}
		return err // an I/O error, not a bad meta file
	}
	return fmt.Errorf("%w: truncated after line %d: %s", ErrBadMeta, line, what)
}

func parseRocksFileLine(l string, schema int) (RocksMetaFile, error) {
	var f RocksMetaFile
	fields := strings.Split(l, " ")
	if len(fields)%2 != 1 {
		return f, fmt.Errorf("bad number of fields in file entry %q", l)
	}
	f.Path = fields[0]
	if !safeRelPath(f.Path) {
		return f, fmt.Errorf("unsafe path %q", f.Path)
	}
	if schema < 2 && (len(fields) != 3 || fields[1] != "crc32") {
		return f, fmt.Errorf("want \"<path> crc32 <decimal>\" in a schema 1 meta file, got %q", l)
	}
	for i := 1; i < len(fields); i += 2 {
		name, data := fields[i], fields[i+1]
		switch {
		case name == "crc32":
			v, err := strconv.ParseUint(data, 10, 32)
			if err != nil || strconv.FormatUint(v, 10) != data {
				return f, fmt.Errorf("bad crc32 %q for %s", data, f.Path)
			}
			f.CRC32C, f.HasCRC = uint32(v), true
		case name == "size":
			v, err := strconv.ParseInt(data, 10, 64)
			if err != nil || v < 0 {
				return f, fmt.Errorf("bad size %q for %s", data, f.Path)
			}
			f.Size, f.HasSize = v, true
		case name == "ni::excluded":
			return f, fmt.Errorf("file %q is excluded from the backup (kept outside it); kvrflow cannot restore it", f.Path)
		case strings.HasPrefix(name, "ni::"):
			return f, fmt.Errorf("unknown non-ignorable field %q for %s (written by a newer RocksDB?)", name, f.Path)
		}
	}
	if !f.HasCRC {
		return f, fmt.Errorf("no crc32 for %s", f.Path)
	}
	return f, nil
}

// safeRelPath reports whether p is a relative path under one of the
// BackupEngine directories, with no "." or ".." parts.
func safeRelPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	switch parts[0] {
	case "shared", "shared_checksum":
		return len(parts) == 2
	case "private":
		return len(parts) == 3
	}
	return false
}

// RocksDBName returns the name a backup file has in the restored
// database. Files under shared_checksum/ are named
// <number>_s<session id>_<size>.sst, <number>_<crc32c>_<size>.<ext> or
// <number>_<crc32c>_<session>.<ext>: they restore as <number>.<ext>. Files
// under shared/ and private/<id>/ keep their names.
func RocksDBName(rel string) (string, error) {
	dir, base := filepath.Split(rel)
	if dir != "shared_checksum/" {
		return base, nil
	}
	ext := filepath.Ext(base)
	number, _, found := strings.Cut(strings.TrimSuffix(base, ext), "_")
	if !found || ext == "" || number == "" {
		return "", fmt.Errorf("%w: %s: not <number>_..._<...>%s", ErrBadMeta, rel, ext)
	}
	if _, err := strconv.ParseUint(number, 10, 64); err != nil {
		return "", fmt.Errorf("%w: %s: %q is not a file number", ErrBadMeta, rel, number)
	}
	return number + ext, nil
}

// loadRocksBackup reads backup id of the BackupEngine directory dir; id
// 0 means the only backup there (several are refused: pickRocksBackup).
func loadRocksBackup(fs *fsx.FS, dir string, id uint64) (*Source, error) {
	metaDir := filepath.Join(dir, "meta")
	if err := fs.CheckDir(metaDir); err != nil {
		return nil, sourceErr(err)
	}
	if id == 0 {
		names, err := fs.List(metaDir)
		if err != nil {
			return nil, err
		}
		var ids []uint64
		for _, n := range names {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil && strconv.FormatUint(v, 10) == n {
				ids = append(ids, v)
			}
		}
		if id, err = pickRocksBackup(dir, ids, 0); err != nil {
			return nil, err
		}
	}
	mpath := filepath.Join(metaDir, strconv.FormatUint(id, 10))
	_, err := fs.CheckRegular(metaDir, strconv.FormatUint(id, 10))
	if errors.Is(err, os.ErrNotExist) {
		var ids []uint64
		if names, err := fs.List(metaDir); err == nil {
			for _, n := range names {
				if v, err := strconv.ParseUint(n, 10, 64); err == nil && strconv.FormatUint(v, 10) == n {
					ids = append(ids, v)
				}
			}
		}
		slices.Sort(ids)
		var have []string
		for _, v := range ids {
			have = append(have, strconv.FormatUint(v, 10))
		}
		if len(have) == 0 {
			return nil, fmt.Errorf("%w: %s: no backup %d (meta/ lists none)", ErrBadSource, dir, id)
		}
		return nil, fmt.Errorf("%w: %s: no backup %d; the backups there are %s", ErrBadSource, dir, id, strings.Join(have, ", "))
	}
	if err != nil {
		return nil, sourceErr(err)
	}
	f, err := fs.OpenRegular(mpath)
	if err != nil {
		return nil, sourceErr(err)
	}
	m, err := ParseRocksMeta(f)
	f.Close()
	if errors.Is(err, ErrBadMeta) {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, mpath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mpath, err)
	}
	src := &Source{Dir: dir, Kind: KindRocksdb, Engine: EngineRocksDB, BackupID: id}
	seen := map[string]bool{}
	for _, mf := range m.Files {
		name, err := RocksDBName(mf.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, mpath, err)
		}
		if !manifest.ValidName(name) || seen[name] {
			return nil, fmt.Errorf("%w: %s: %s restores as %q, unsafe or listed twice", ErrBadSource, mpath, mf.Path, name)
		}
		seen[name] = true
		src.Files = append(src.Files, SourceFile{
			Name: name, From: mf.Path, Path: filepath.Join(dir, filepath.FromSlash(mf.Path)),
			Size: mf.Size, NoSize: !mf.HasSize, CRC32C: mf.CRC32C,
			Linkable: strings.HasSuffix(name, ".sst"),
		})
	}
	return src, nil
}

// loadCheckpoint lists a plain checkpoint directory: every regular file in
// it, with no recorded size or checksum (Precheck measures both and the
// journal keeps them). LOCK and LOG files are not part of a database's
// state and are left out.
func loadCheckpoint(fs *fsx.FS, dir string, names []string, engine string) (*Source, error) {
	src := &Source{Dir: dir, Kind: KindCheckpoint, Engine: engine}
	for _, n := range names {
		if n == "LOCK" || n == "LOG" || strings.HasPrefix(n, "LOG.old.") {
			continue
		}
		p := filepath.Join(dir, n)
		if err := checkRegular(fs, dir, n); err != nil {
			return nil, err
		}
		src.Files = append(src.Files, SourceFile{Name: n, Path: p, NoSize: true, NoCRC: true,
			Linkable: strings.HasSuffix(n, ".sst")})
	}
	if len(src.Files) == 0 {
		return nil, fmt.Errorf("%w: %s: empty checkpoint", ErrBadSource, dir)
	}
	return src, nil
}
