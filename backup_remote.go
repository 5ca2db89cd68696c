package kvrflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/kvrflow/kvrflow/internal/fsx"
	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/remote"
	"github.com/kvrflow/kvrflow/steps"
)

// ErrBackupExists is returned by BackupTo when the prefix already holds a
// backup (its manifest KVRFLOW-BACKUP): nothing was written. It is bad
// input: errors.Is(err, steps.ErrBadPath) holds too.
var ErrBackupExists = errors.New("a backup already exists")

// ErrObjectInTheWay is returned by BackupTo when an object under the
// prefix is not the file of this backup at its key (another size or
// crc32c), or is no file of this backup at all: BackupTo never overwrites
// and never leaves an object the manifest does not list, so it stops
// before writing anything. It matches steps.ErrBadPath too.
var ErrObjectInTheWay = errors.New("an object is in the way")

// destError marks an error of the destination that is the operator's to
// fix (a bad URL, a missing bucket, refused credentials, an object in the
// way) as bad input, steps.ErrBadPath, without changing its message.
type destError struct{ err error }

func (e destError) Error() string   { return e.err.Error() }
func (e destError) Unwrap() []error { return []error{steps.ErrBadPath, e.err} }

// asDest marks err as the destination's fault when it is one of those.
func asDest(err error) error {
	for _, k := range []error{remote.ErrBadURL, remote.ErrConfig, remote.ErrNotFound, remote.ErrAccessDenied, ErrBackupExists, ErrObjectInTheWay} {
		if errors.Is(err, k) {
			return destError{err}
		}
	}
	return err
}

// RemoteBackupOptions tune BackupTo. The zero value is usable.
type RemoteBackupOptions struct {
	// Remote tunes the object store client (RateLimit, part size,
	// retries); its Progress is BackupTo's own.
	Remote remote.Options
	// Progress, if set, is called with the bytes of the backup uploaded or
	// read back to check an object already there (a retried upload counts
	// again; done never passes total) and the backup's size, from several
	// goroutines.
	Progress func(done, total int64)
	// FilesAtOnce is how many files are uploaded (or checked) at once.
	// Default 2: with the store's defaults one upload holds about 40 MiB.
	FilesAtOnce int
	// Log receives what BackupTo decides about leftovers. Default: none.
	Log *zerolog.Logger
}

// RemoteBackupResult describes a backup made by BackupTo.
type RemoteBackupResult struct {
	URL     string    `json:"url"` // secrets removed
	Files   int       `json:"files"`
	Bytes   int64     `json:"bytes"`
	Created time.Time `json:"created"` // when the checkpoint was made
	// Resumed: an interrupted upload to this URL was continued, from the
	// checkpoint it had made (Created is that checkpoint's time).
	Resumed bool `json:"resumed"`
	// Uploaded counts the objects this call wrote (the manifest included)
	// and their bytes; Kept the objects of an interrupted upload that were
	// checked (size and crc32c, read back) and kept.
	UploadedFiles int   `json:"uploaded_files"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	KeptFiles     int   `json:"kept_files"`
	KeptBytes     int64 `json:"kept_bytes"`
	// Removed lists the leftover local checkpoints of earlier backups that
	// were proven kvrflow's and removed; Unproven those left in place.
	Removed  []string `json:"removed_leftovers,omitempty"`
	Unproven []string `json:"unproven_leftovers,omitempty"`
}

// BackupTo backs up the Pebble database db to the object store at rawURL
// (s3://BUCKET/PREFIX, gs://, azblob://, file:///DIR: see remote.Open),
// as a kvrflow backup: the files of a checked checkpoint (as Backup makes
// one), then the manifest KVRFLOW-BACKUP, last.
//
// The checkpoint is made in a directory of kvrflow's own, DB.kvrflow/
// upload-ID/checkpoint (hard links to the tables: cheap), under kvrflow's
// lock on db; upload-ID holds a marker naming ID, the database, the URL
// and the directory's identity, which is what allows kvrflow to remove it
// (see uploadDir). Every file is uploaded with PutIfAbsent, FilesAtOnce
// at a time, each large one in parts; the objects are listed again, their
// sizes checked and no other object allowed (another writer's); then the
// manifest is put (PutIfAbsent), and the local checkpoint removed. Two
// uploads to one prefix at once are not locked out: one fails, and an
// object the other writer puts after the winner's listing leaves the
// winner's backup refused by restore (an object not listed): back up to
// a prefix of one writer.
//
// Never overwrite: a prefix with a manifest is ErrBackupExists, nothing
// written. A prefix with objects but no manifest is an interrupted upload:
// an object whose size and crc32c (read back) are those of the file at
// its key is kept, anything else is ErrObjectInTheWay, naming the key,
// before anything is written. An upload interrupted by an error or ctx
// keeps its local checkpoint; BackupTo to the same URL later resumes from
// it (the same files, so every object already uploaded is kept), and
// removes any other proven leftover.
//
// Durable state: on success the backup exists whole at rawURL and the
// local checkpoint is gone. On error the prefix holds no manifest, so it
// is no backup a restore reads, and DB.kvrflow may hold upload-ID; a
// retry is safe and resumes. The database itself is only read (Pebble
// opens it for the checkpoint: steps.ErrInUse if another process holds
// it). Bad input (a bad URL, a missing bucket, refused credentials, an
// existing backup, an object in the way, a db that is no Pebble database)
// matches steps.ErrBadPath.
func BackupTo(ctx context.Context, db, rawURL string, o RemoteBackupOptions) (*RemoteBackupResult, error) {
	seam := fsx.New(vfs.Default, nil)
	log := zerolog.Nop()
	if o.Log != nil {
		log = *o.Log
	}
	if err := checkBackupDB(seam, db); err != nil {
		return nil, err
	}
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "file" && u.Path != "" {
		// A directory on this machine: the rules of --to DIR.
		if err := checkBackupTarget(seam, db, filepath.Clean(u.Path)); err != nil {
			return nil, err
		}
	}
	var up *uploader // set once the checkpoint is known, for the progress
	ropts := o.Remote
	ropts.Progress = func(_ string, n int64) {
		if up != nil {
			up.add(n)
		}
	}
	store, err := remote.Open(ctx, rawURL, ropts)
	if err != nil {
		return nil, asDest(err)
	}
	defer store.Close()
	objs, err := listPrefix(ctx, store)
	if err != nil {
		return nil, err
	}
	if _, ok := objs[manifest.Name]; ok {
		return nil, destError{fmt.Errorf("%w at %s (%s): a backup is never overwritten; back up to a new prefix", ErrBackupExists, store, manifest.Name)}
	}

	w, err := openUploadWork(seam, db)
	if err != nil {
		return nil, err
	}
	defer w.close()
	res := &RemoteBackupResult{URL: store.String()}
	resume, err := w.sweep(store.String(), &log, res)
	if err != nil {
		return nil, err
	}
	var m *manifest.Manifest
	if resume != nil {
		m = resume.manifest
		res.Resumed = true
		log.Info().Str("checkpoint", resume.checkpoint()).Str("url", store.String()).Msg("resuming the interrupted upload from its checkpoint")
	} else {
		if resume, err = w.create(store.String()); err != nil {
			return nil, err
		}
		if m, _, _, err = checkpointDB(ctx, seam, db, resume.checkpoint(), false); err != nil {
			// Nothing was uploaded: this call's directory goes (it made it).
			if rerr := seam.RemoveAllDurable(resume.path); rerr != nil {
				return nil, fmt.Errorf("%w (and removing %s failed: %w)", err, resume.path, rerr)
			}
			return nil, err
		}
	}
	res.Files, res.Bytes, res.Created = len(m.Files), m.Bytes(), m.Created

	up = &uploader{store: store, seam: seam, dir: resume.checkpoint(), m: m, existing: objs,
		atOnce: o.FilesAtOnce, progress: o.Progress, total: m.Bytes(), res: res}
	if up.atOnce <= 0 {
		up.atOnce = 2
	}
	if err := up.run(ctx); err != nil {
		err = asDest(err)
		if errors.Is(err, ErrObjectInTheWay) && !res.Resumed && res.UploadedFiles == 0 {
			// Nothing of this call is in the store: its checkpoint
			// would only resume into the same refusal.
			_ = seam.RemoveAllDurable(resume.path)
			return nil, err
		}
		return nil, fmt.Errorf("%w (no manifest written: %s is no backup; the checkpoint stays in %s: run the same backup again to resume the upload)", err, store, resume.path)
	}
	if err := seam.RemoveAllDurable(resume.path); err != nil {
		// The backup is whole; the next backup removes the checkpoint.
		log.Warn().Err(err).Str("path", resume.path).Msg("backup uploaded; removing its local checkpoint failed")
	}
	return res, nil
}

// listPrefix returns the objects under the store's prefix by key; an
// empty prefix is no error.
func listPrefix(ctx context.Context, store *remote.Store) (map[string]remote.Object, error) {
	list, err := store.List(ctx)
	if errors.Is(err, remote.ErrNotFound) {
		return map[string]remote.Object{}, nil // Open found the bucket: the prefix is empty
	}
	if err != nil {
		return nil, asDest(err)
	}
	objs := make(map[string]remote.Object, len(list))
	for _, o := range list {
		objs[o.Key] = o
	}
	return objs, nil
}

// uploader puts one checkpoint's files and then its manifest.
type uploader struct {
	store    *remote.Store
	seam     *fsx.FS
	dir      string
	m        *manifest.Manifest
	existing map[string]remote.Object
	atOnce   int
	progress func(done, total int64)
	total    int64
	done     atomic.Int64

	mu  sync.Mutex // res's counts
	res *RemoteBackupResult
}

// afterUpload, if set (by tests), is called after each file's object is
// in the store.
var afterUpload func(key string)

func (u *uploader) add(n int64) {
	d := u.done.Add(n)
	if u.progress != nil {
		u.progress(min(d, u.total), u.total)
	}
}

// run checks what is in the way, uploads the rest, verifies the listing
// and puts the manifest last.
func (u *uploader) run(ctx context.Context) error {
	listed := make(map[string]manifest.File, len(u.m.Files))
	for _, f := range u.m.Files {
		listed[f.Name] = f
	}
	for key := range u.existing {
		if _, ok := listed[key]; !ok {
			return fmt.Errorf("%w: %s is not a file of this backup (an interrupted upload of another checkpoint, or another writer): nothing written; remove it or back up to a new prefix",
				ErrObjectInTheWay, keyURL(u.store, key))
		}
	}
	// First every existing object is checked, before anything is written.
	keep := make([]bool, len(u.m.Files))
	err := u.each(ctx, func(ctx context.Context, i int) error {
		f := u.m.Files[i]
		obj, ok := u.existing[f.Name]
		if !ok {
			return nil
		}
		if err := u.same(ctx, f, obj); err != nil {
			return err
		}
		keep[i] = true // its bytes were counted as read back
		u.count(&u.res.KeptFiles, &u.res.KeptBytes, f.Size)
		return nil
	})
	if err != nil {
		return err
	}
	err = u.each(ctx, func(ctx context.Context, i int) error {
		if keep[i] {
			return nil
		}
		return u.put(ctx, u.m.Files[i])
	})
	if err != nil {
		return err
	}
	if err := u.verify(ctx); err != nil {
		return err
	}
	return u.putManifest(ctx)
}

// same checks that obj is the file f: the same size, and (read back) the
// same crc32c. Anything else is ErrObjectInTheWay.
func (u *uploader) same(ctx context.Context, f manifest.File, obj remote.Object) error {
	if obj.Size != f.Size {
		return fmt.Errorf("%w: %s holds %d bytes, the backup's file %d: nothing overwritten; remove it or back up to a new prefix",
			ErrObjectInTheWay, keyURL(u.store, f.Name), obj.Size, f.Size)
	}
	want := obj.Want()
	want.CRC32C, want.CheckCRC = f.CRC32C, true
	_, _, err := u.store.Copy(ctx, f.Name, io.Discard, want)
	if errors.Is(err, remote.ErrChecksum) {
		return fmt.Errorf("%w: %s has the size of the backup's file but not its crc32c %08x: nothing overwritten; remove it or back up to a new prefix",
			ErrObjectInTheWay, keyURL(u.store, f.Name), f.CRC32C)
	}
	return err
}

// put uploads the file f, never over an existing object; an ErrExists
// (the answer to an earlier attempt was lost, or another writer) is
// accepted only for an object that is the file.
func (u *uploader) put(ctx context.Context, f manifest.File) error {
	path := filepath.Join(u.dir, f.Name)
	file, err := u.seam.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	crc, err := u.store.PutIfAbsent(ctx, f.Name, file, f.Size)
	switch {
	case errors.Is(err, remote.ErrExists):
		obj, serr := u.store.Stat(ctx, f.Name)
		if serr != nil {
			return serr
		}
		if err := u.same(ctx, f, obj); err != nil {
			return err
		}
	case err != nil:
		return err
	case crc != f.CRC32C:
		return fmt.Errorf("%w: %s changed after its crc32c was recorded (%08x, uploaded %08x): the object %s is not the backup's; no manifest will be written",
			steps.ErrChecksum, path, f.CRC32C, crc, keyURL(u.store, f.Name))
	}
	u.count(&u.res.UploadedFiles, &u.res.UploadedBytes, f.Size)
	if afterUpload != nil {
		afterUpload(f.Name)
	}
	return nil
}

// verify lists the prefix again: every file must be there, with its
// size, and nothing else (another writer's object would make the prefix
// one a restore refuses: an object the manifest does not list).
func (u *uploader) verify(ctx context.Context) error {
	objs, err := listPrefix(ctx, u.store)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(u.m.Files))
	for _, f := range u.m.Files {
		listed[f.Name] = true
	}
	for key := range objs {
		if !listed[key] && key != manifest.Name { // a manifest: putManifest says whose
			return fmt.Errorf("%w: %s appeared during this upload and is not a file of this backup (another writer): no manifest written; remove it or back up to a new prefix",
				ErrObjectInTheWay, keyURL(u.store, key))
		}
	}
	for _, f := range u.m.Files {
		obj, ok := objs[f.Name]
		switch {
		case !ok:
			return fmt.Errorf("verify the upload: %s is not listed after its upload", keyURL(u.store, f.Name))
		case obj.Size != f.Size:
			return fmt.Errorf("verify the upload: %s is listed with %d bytes, uploaded %d", keyURL(u.store, f.Name), obj.Size, f.Size)
		}
	}
	return nil
}

// putManifest puts the manifest, the object that makes the prefix a
// backup. ErrExists is accepted only for the same bytes (a lost answer).
func (u *uploader) putManifest(ctx context.Context) error {
	data := u.m.Encode()
	_, err := u.store.PutIfAbsent(ctx, manifest.Name, bytes.NewReader(data), int64(len(data)))
	if errors.Is(err, remote.ErrExists) {
		var got bytes.Buffer
		if _, _, cerr := u.store.Copy(ctx, manifest.Name, &got, remote.Want{Size: -1}); cerr != nil || !bytes.Equal(got.Bytes(), data) {
			return fmt.Errorf("%w at %s: another writer put its manifest during this upload", ErrBackupExists, u.store)
		}
		err = nil
	}
	if err != nil {
		return err
	}
	u.count(&u.res.UploadedFiles, &u.res.UploadedBytes, int64(len(data)))
	return nil
}

func (u *uploader) count(files *int, bytes *int64, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	*files++
	*bytes += n
}

// each calls fn for every file index, atOnce at a time; the first error
// cancels the rest and is returned.
func (u *uploader) each(ctx context.Context, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, u.atOnce)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range u.m.Files {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// keyURL names the object at key for a message: the store's URL (secrets
// removed) without its query, and the key.
func keyURL(store *remote.Store, key string) string {
	base, _, _ := strings.Cut(store.String(), "?")
	return strings.TrimSuffix(base, "/") + "/" + key
}
