package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/remote"
)

// Remote transfer settings. One file's transfer streams each GET's body
// into the file through one 256 KiB buffer (internal/remote), reading an
// object up to RemoteGetSize with one GET and a larger one in ranges of
// RemoteGetSize, and at most RemoteFiles files are transferred at once:
// RemoteFiles × 256 KiB of buffers (1 MiB), plus the HTTP connections'
// own, whatever the backup's or the objects' sizes. With the CLI's soft
// memory limit (80 MiB) and the binary's own pages (about 57 MiB for
// kvrflow version: the cloud SDKs), a restore's peak RSS stays well under
// 128 MiB (TestRemote_PeakRSS measures it). Whole-object GETs cost an
// S3-compatible server far less than ranged ones (versitygw on the
// benchmark's two cores: 0.4 s of CPU for 1 GiB, against 1.1 s in 4 MiB
// ranges).
var (
	RemoteFiles   = 4
	RemoteGetSize = int64(64 << 20)
	// RemoteIdleTimeout is how long a transfer waits for a byte before it
	// retries (0: internal/remote's default, 30 s); tests shorten it.
	RemoteIdleTimeout time.Duration
)

// maxRemoteMeta bounds the size of a manifest or meta file read into
// memory from an object store.
const maxRemoteMeta = 64 << 20

// urlScheme matches a source given as a URL: scheme://...
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// IsURL reports whether source is a URL (s3://, gs://, azblob://,
// file://, or any other scheme://, refused later as unsupported) rather
// than a local path. A local directory whose name looks like one is given
// as ./NAME.
func IsURL(source string) bool { return urlScheme.MatchString(source) }

// remoteState is what a Source read from an object store holds: the open
// store and the slots that bound the files transferred at once.
type remoteState struct {
	store *remote.Store
	slots chan struct{}
}

// RemoteOptions returns the options Write's transfers use, with the rate
// limit given (bytes per second, 0: none).
func RemoteOptions(rateLimit int64) remote.Options {
	return remote.Options{GetSize: RemoteGetSize, RateLimit: rateLimit, IdleTimeout: RemoteIdleTimeout}
}

// OpenRemoteSource reads the source stored under the URL rawURL, as
// OpenSource reads a directory: a kvrflow backup (the object
// KVRFLOW-BACKUP), a RocksDB BackupEngine directory (meta/N and private/,
// shared_checksum/ or shared/), or a plain checkpoint (CURRENT). It lists
// the prefix once and checks that every file the manifest or meta file
// names is listed, at the size recorded; it reads no data but the manifest
// or meta file. The Source's Dir and files' Paths are URLs without
// secrets; Close releases the store.
//
// Errors: ErrBadSource naming the URL (and key) and the cause for a bad
// URL, a missing bucket or prefix, refused credentials, a prefix holding
// no known source, a manifest or meta file that is invalid or names an
// absent object or one of another size; other errors (a network failure
// that outlived the retries) as they are.
func OpenRemoteSource(ctx context.Context, rawURL, engine string, backupID uint64, opts remote.Options) (*Source, error) {
	st, err := remote.Open(ctx, rawURL, opts)
	if err != nil {
		return nil, remoteErr(err)
	}
	src, err := loadRemote(ctx, st, engine, backupID)
	if err != nil {
		st.Close()
		return nil, err
	}
	src.remote = &remoteState{store: st, slots: make(chan struct{}, max(1, RemoteFiles))}
	return src, nil
}

// Close releases the object store of a remote source. Safe to call on a
// local source and more than once.
func (s *Source) Close() error {
	if s == nil || s.remote == nil {
		return nil
	}
	return s.remote.store.Close()
}

// Remote reports whether the source is in an object store.
func (s *Source) Remote() bool { return s != nil && s.remote != nil }

// remoteErr marks the remote errors that are bad input (exit 2) as
// ErrBadSource: a bad URL or configuration, a missing bucket, prefix or
// object, refused credentials, an object changed since it was listed, a
// checksum mismatch. A network failure that outlived the retries is left
// as it is.
func remoteErr(err error) error {
	for _, kind := range []error{remote.ErrBadURL, remote.ErrConfig, remote.ErrNotFound, remote.ErrAccessDenied, remote.ErrChanged, remote.ErrChecksum} {
		if errors.Is(err, kind) {
			if kind == remote.ErrChecksum {
				return fmt.Errorf("%w: %w: %w", ErrBadSource, ErrChecksum, err)
			}
			return fmt.Errorf("%w: %w", ErrBadSource, err)
		}
	}
	return err
}

func loadRemote(ctx context.Context, st *remote.Store, engine string, backupID uint64) (*Source, error) {
	objs, err := st.List(ctx)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s: nothing is stored under this prefix", ErrBadSource, st)
	}
	if err != nil {
		return nil, remoteErr(err)
	}
	byKey := make(map[string]remote.Object, len(objs))
	var top []string
	pebbleMarker, meta, data := false, false, false
	for _, o := range objs {
		byKey[o.Key] = o
		dir, _, nested := strings.Cut(o.Key, "/")
		switch {
		case !nested:
			top = append(top, o.Key)
			pebbleMarker = pebbleMarker || strings.HasPrefix(o.Key, "marker.manifest.")
		case dir == "meta":
			meta = true
		case dir == "private" || dir == "shared_checksum" || dir == "shared":
			data = true
		}
	}
	url := st.URLOf("")
	var src *Source
	switch {
	case slices.Contains(top, manifest.Name):
		src, err = loadRemoteKvrflow(ctx, st, byKey)
	case meta && data:
		src, err = loadRemoteRocks(ctx, st, byKey, backupID)
	case pebbleMarker:
		return nil, fmt.Errorf("%w: %s: no %s manifest: a Pebble checkpoint without one may be incomplete (make backups with kvrflow backup)", ErrBadSource, url, manifest.Name)
	case slices.Contains(top, "CURRENT"):
		src, err = loadRemoteCheckpoint(st, objs)
	default:
		return nil, fmt.Errorf("%w: %s: no %s manifest, no RocksDB backup meta/ directory, and not a database checkpoint", ErrBadSource, url, manifest.Name)
	}
	if err != nil {
		return nil, err
	}
	src.Dir = url
	if engine != "" && engine != EngineAuto && engine != src.Engine {
		return nil, fmt.Errorf("%w: %s: --engine %s, but the source is a %s %s", ErrBadSource, url, engine, src.Engine, src.Kind)
	}
	return src, nil
}

// remoteFile is the SourceFile of the listed object o, restored as name.
func remoteFile(st *remote.Store, name string, o remote.Object) SourceFile {
	f := SourceFile{Name: name, Path: st.URLOf(o.Key), Size: o.Size, Key: o.Key, ETag: o.ETag, modTime: o.ModTime,
		Linkable: strings.HasSuffix(name, ".sst")}
	if o.Key != name {
		f.From = o.Key
	}
	return f
}

// readSmall reads a listed object of at most maxRemoteMeta bytes.
func readSmall(ctx context.Context, st *remote.Store, o remote.Object) ([]byte, error) {
	if o.Size > maxRemoteMeta {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than a manifest or meta file may hold (%d)", ErrBadSource, st.URLOf(o.Key), o.Size, maxRemoteMeta)
	}
	var b bytes.Buffer
	if _, _, err := st.Copy(ctx, o.Key, &b, o.Want()); err != nil {
		return nil, remoteErr(err)
	}
	return b.Bytes(), nil
}

// loadRemoteKvrflow reads a kvrflow backup's manifest; every object under
// the prefix must be a listed file or the manifest, as for a directory.
func loadRemoteKvrflow(ctx context.Context, st *remote.Store, byKey map[string]remote.Object) (*Source, error) {
	data, err := readSmall(ctx, st, byKey[manifest.Name])
	if err != nil {
		return nil, err
	}
	mURL := st.URLOf(manifest.Name)
	m, err := manifest.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, mURL, err)
	}
	if m.Engine != EnginePebble {
		return nil, fmt.Errorf("%w: %s: engine %q, this source format holds pebble backups", ErrBadSource, mURL, m.Engine)
	}
	src := &Source{Kind: KindKvrflow, Engine: m.Engine}
	listed := map[string]bool{manifest.Name: true}
	for _, mf := range m.Files {
		listed[mf.Name] = true
		o, ok := byKey[mf.Name]
		if !ok {
			return nil, fmt.Errorf("%w: %s: listed in the manifest, not stored", ErrBadSource, st.URLOf(mf.Name))
		}
		if o.Size != mf.Size {
			return nil, fmt.Errorf("%w: %s: size %d, manifest says %d (truncated or changed)", ErrBadSource, st.URLOf(mf.Name), o.Size, mf.Size)
		}
		f := remoteFile(st, mf.Name, o)
		f.CRC32C = mf.CRC32C
		src.Files = append(src.Files, f)
	}
	for k := range byKey {
		if !listed[k] {
			return nil, fmt.Errorf("%w: %s: object not listed in the manifest", ErrBadSource, st.URLOf(k))
		}
	}
	return src, nil
}

// loadRemoteRocks reads backup id of a BackupEngine directory stored under
// the prefix. Without an id the prefix must hold exactly one backup (see
// pickRocksBackup).
func loadRemoteRocks(ctx context.Context, st *remote.Store, byKey map[string]remote.Object, id uint64) (*Source, error) {
	var ids []uint64
	for k := range byKey {
		if n, ok := strings.CutPrefix(k, "meta/"); ok {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil && strconv.FormatUint(v, 10) == n {
				ids = append(ids, v)
			}
		}
	}
	url := st.URLOf("")
	id, err := pickRocksBackup(url, ids, id)
	if err != nil {
		return nil, err
	}
	key := "meta/" + strconv.FormatUint(id, 10)
	data, err := readSmall(ctx, st, byKey[key])
	if err != nil {
		return nil, err
	}
	m, err := ParseRocksMeta(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, st.URLOf(key), err)
	}
	src := &Source{Kind: KindRocksdb, Engine: EngineRocksDB, BackupID: id}
	seen := map[string]bool{}
	for _, mf := range m.Files {
		name, err := RocksDBName(mf.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadSource, st.URLOf(key), err)
		}
		if !manifest.ValidName(name) || seen[name] {
			return nil, fmt.Errorf("%w: %s: %s restores as %q, unsafe or listed twice", ErrBadSource, st.URLOf(key), mf.Path, name)
		}
		seen[name] = true
		o, ok := byKey[mf.Path]
		if !ok {
			return nil, fmt.Errorf("%w: %s: listed in %s, not stored", ErrBadSource, st.URLOf(mf.Path), key)
		}
		if mf.HasSize && o.Size != mf.Size {
			return nil, fmt.Errorf("%w: %s: size %d, %s says %d (truncated or changed)", ErrBadSource, st.URLOf(mf.Path), o.Size, key, mf.Size)
		}
		f := remoteFile(st, name, o)
		f.CRC32C = mf.CRC32C
		src.Files = append(src.Files, f)
	}
	return src, nil
}

// pickRocksBackup returns the backup to restore of a BackupEngine
// directory at where whose meta/ lists ids: id if it is listed; without
// one (id 0) the only backup, and an error naming them all if there are
// several: restoring one of them by a guess is refused (issue 13: "two
// backups under one prefix without --backup-id" is bad input). Local and
// remote sources follow this one rule.
func pickRocksBackup(where string, ids []uint64, id uint64) (uint64, error) {
	slices.Sort(ids)
	have := make([]string, len(ids))
	for i, v := range ids {
		have[i] = strconv.FormatUint(v, 10)
	}
	switch {
	case len(ids) == 0 && id == 0:
		return 0, fmt.Errorf("%w: %s: no backup in meta/", ErrBadSource, where)
	case len(ids) == 0:
		return 0, fmt.Errorf("%w: %s: no backup %d (meta/ lists none)", ErrBadSource, where, id)
	case id == 0 && len(ids) > 1:
		return 0, fmt.Errorf("%w: %s: %d backups (%s); choose one with --backup-id", ErrBadSource, where, len(ids), strings.Join(have, ", "))
	case id == 0:
		return ids[0], nil
	case !slices.Contains(ids, id):
		return 0, fmt.Errorf("%w: %s: no backup %d; the backups there are %s", ErrBadSource, where, id, strings.Join(have, ", "))
	}
	return id, nil
}

// loadRemoteCheckpoint lists a plain checkpoint stored under the prefix:
// every object but LOCK and LOG files, of the listed size, with no
// recorded checksum (Write measures it as the bytes arrive, the ETag
// guards against a change while they do, and the journal keeps it).
func loadRemoteCheckpoint(st *remote.Store, objs []remote.Object) (*Source, error) {
	src := &Source{Kind: KindCheckpoint, Engine: EngineRocksDB}
	for _, o := range objs {
		n := o.Key
		if n == "LOCK" || n == "LOG" || strings.HasPrefix(n, "LOG.old.") {
			continue
		}
		if !manifest.ValidName(n) {
			return nil, fmt.Errorf("%w: %s: not a file of a checkpoint (a checkpoint holds files only, no directories)", ErrBadSource, st.URLOf(n))
		}
		f := remoteFile(st, n, o)
		f.NoCRC = true
		src.Files = append(src.Files, f)
	}
	if len(src.Files) == 0 {
		return nil, fmt.Errorf("%w: %s: empty checkpoint", ErrBadSource, st.URLOf(""))
	}
	return src, nil
}

// remoteWant is what the transfer of f expects: the listed size and ETag
// (or modification time), and the recorded crc32c if there is one.
func remoteWant(f SourceFile) remote.Want {
	return remote.Want{Size: f.Size, ETag: f.ETag, ModTime: f.modTime, CRC32C: f.CRC32C, CheckCRC: !f.NoCRC}
}

// OpenAnySource opens source: a URL (IsURL) with OpenRemoteSource, the
// rate limit given (bytes per second, 0: none); a directory with
// OpenSource. The caller closes the Source.
func OpenAnySource(ctx context.Context, fs *fsx.FS, source, engine string, backupID uint64, rateLimit int64) (*Source, error) {
	if IsURL(source) {
		return OpenRemoteSource(ctx, source, engine, backupID, RemoteOptions(rateLimit))
	}
	return OpenSource(fs, source, engine, backupID)
}

// fileURLDir returns the directory of a file:// URL, "" for any other.
func fileURLDir(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme != "file" || u.Path == "" {
		return ""
	}
	return filepath.Clean(u.Path)
}
