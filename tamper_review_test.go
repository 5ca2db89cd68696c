package kvrflow

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/manifest"
	"github.com/kvrflow/kvrflow/internal/sampledb"
	"github.com/kvrflow/kvrflow/internal/testutil"
	"github.com/kvrflow/kvrflow/steps"
)

// sameFilesAsBackup fails t unless every file of the backup dir (but its
// manifest) is in db with the same bytes.
func sameFilesAsBackup(t *testing.T, backup, db string) {
	t.Helper()
	names, err := os.ReadDir(backup)
	must(t, err)
	for _, n := range names {
		if n.Name() == manifest.Name {
			continue
		}
		want, err := os.ReadFile(filepath.Join(backup, n.Name()))
		must(t, err)
		got, err := os.ReadFile(filepath.Join(db, n.Name()))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the committed database's copy differs from the backup's", n.Name())
		}
	}
}

// TestRestore_ResumeRereadsATrashFileChangedInPlace: a file of an
// interrupted run's trash rewritten in place (same inode, same size) and
// its mtime set back (touch -r) is not reused as it is: the resumed
// restore commits the backup's bytes, or rolls back.
func TestRestore_ResumeRereadsATrashFileChangedInPlace(t *testing.T) {
	noteEveryFile(t)
	fs, root := vfs.Default, t.TempDir()
	f := newFixture(t, fs, root)
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@4"
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore with a failing note: %v, want rolled back", err)
	}
	tr := trashIn(fs, f.db)
	if len(tr) != 1 {
		t.Fatalf("trash: %v", tr)
	}
	dir := filepath.Join(f.db+".kvrflow", tr[0])
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		must(t, err)
		if fi.Size() == 0 {
			continue
		}
		fh, err := os.OpenFile(p, os.O_WRONLY, 0)
		must(t, err)
		_, err = fh.WriteAt(bytes.Repeat([]byte{0x5a}, int(fi.Size()/2+1)), 0)
		must(t, err)
		must(t, fh.Close())
		must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	}
	if _, err := Restore(context.Background(), opts); err != nil {
		if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.old) {
			t.Fatalf("the restore failed (%v) and changed the database", err)
		}
		return
	}
	sameFilesAsBackup(t, f.backup, f.db)
}

// noSymlinks fails t if dir holds a symbolic link.
func noSymlinks(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		if e.Type()&os.ModeSymlink != 0 {
			t.Errorf("%s: a symbolic link in the committed database", filepath.Join(dir, e.Name()))
		}
	}
}

// TestRestore_DeltaDoesNotLinkASymlinkedTable: a table of the database
// being replaced that is a symbolic link to a file elsewhere is not
// hard-linked into staging (a hard link to a symlink is a symlink: the new
// database would hold a name pointing outside it).
func TestRestore_DeltaDoesNotLinkASymlinkedTable(t *testing.T) {
	root := t.TempDir()
	f, backup2 := deltaFixture(t, vfs.Default, root)
	outside := filepath.Join(root, "outside")
	must(t, os.Mkdir(outside, 0o755))
	ents, err := os.ReadDir(f.db)
	must(t, err)
	n := 0
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".sst" {
			continue
		}
		p, o := filepath.Join(f.db, e.Name()), filepath.Join(outside, e.Name())
		must(t, os.Rename(p, o))
		must(t, os.Symlink(o, p))
		n++
	}
	if n == 0 {
		t.Fatal("no table in the database")
	}
	o := f.opts()
	o.Source, o.Mode, o.KeepOld = backup2, steps.ModeCopy, 1
	res, err := Restore(context.Background(), o)
	if err != nil {
		t.Logf("restore: %v", err)
		return
	}
	t.Logf("summary %+v", res.Summary)
	noSymlinks(t, f.db)
	sameFilesAsBackup(t, backup2, f.db)
}

// TestRestore_ResumeDoesNotLinkASymlinkInTheTrash: files of an interrupted
// run's trash moved out and replaced by symbolic links to them (the same
// inodes, sizes and mtimes) are not linked into staging.
func TestRestore_ResumeDoesNotLinkASymlinkInTheTrash(t *testing.T) {
	noteEveryFile(t)
	fs, root := vfs.Default, t.TempDir()
	f := newFixture(t, fs, root)
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@4"
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore with a failing note: %v, want rolled back", err)
	}
	tr := trashIn(fs, f.db)
	if len(tr) != 1 {
		t.Fatalf("trash: %v", tr)
	}
	dir := filepath.Join(f.db+".kvrflow", tr[0])
	outside := filepath.Join(root, "outside")
	must(t, os.Mkdir(outside, 0o755))
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		p, o := filepath.Join(dir, e.Name()), filepath.Join(outside, e.Name())
		must(t, os.Rename(p, o))
		must(t, os.Symlink(o, p))
	}
	res, err := Restore(context.Background(), opts)
	if err != nil {
		if got := testutil.ReadDB(t, fs, f.db); !testutil.Equal(got, f.old) {
			t.Fatalf("the restore failed (%v) and changed the database", err)
		}
		return
	}
	t.Logf("summary %+v", res.Summary)
	noSymlinks(t, f.db)
	sameFilesAsBackup(t, f.backup, f.db)
	if left, err := os.ReadDir(outside); err != nil || len(left) != len(ents) {
		t.Fatalf("the files moved outside: %d left of %d (%v)", len(left), len(ents), err)
	}
}

// TestRestore_NoDeltaDoesNotResumeADeltaLink: a delta restore that failed
// after its Write left its staging as trash, holding links to the
// database's own tables; a restore of the same source with NoDelta (the
// database's copies are not to be shared, whatever their checksum) does not
// resume those links: no table of the new database shares an inode with
// the database it replaced.
func TestRestore_NoDeltaDoesNotResumeADeltaLink(t *testing.T) {
	noteEveryFile(t)
	root := t.TempDir()
	f, backup2 := deltaFixture(t, vfs.Default, root)
	o := f.opts()
	o.Source, o.Mode = backup2, steps.ModeCopy
	failing := o
	failing.FaultSpec = "restore.commit.begin:eio"
	res, err := Restore(context.Background(), failing)
	if !IsRolledBack(err) {
		t.Fatalf("failing restore: %v, want rolled back", err)
	}
	if res == nil || res.Summary.Delta == 0 {
		t.Fatalf("the failed restore linked no table from the database: %+v", res)
	}
	if tr := trashIn(vfs.Default, f.db); len(tr) != 1 {
		t.Fatalf("trash after the failure: %v", tr)
	}
	old := map[uint64]string{}
	ents, err := os.ReadDir(f.db)
	must(t, err)
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(f.db, e.Name()))
		must(t, err)
		old[fi.Sys().(*syscall.Stat_t).Ino] = e.Name()
	}
	o.NoDelta = true
	res, err = Restore(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", res.Summary)
	ents, err = os.ReadDir(f.db)
	must(t, err)
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(f.db, e.Name()))
		must(t, err)
		if name, ok := old[fi.Sys().(*syscall.Stat_t).Ino]; ok {
			t.Errorf("%s of the new database is the replaced database's %s (a delta link resumed under NoDelta)", e.Name(), name)
		}
	}
	sameFilesAsBackup(t, backup2, f.db)
}

// TestRestore_ResumeDoesNotWriteIntoAPartialFileLinkedElsewhere: the
// partial copy of a large file in an interrupted run's trash, hard-linked
// by another name outside kvrflow's directory, is not continued in place
// (that would write into the outside file): the outside file keeps its
// bytes, and the restore gives the backup's database.
func TestRestore_ResumeDoesNotWriteIntoAPartialFileLinkedElsewhere(t *testing.T) {
	every := steps.PartialEvery
	steps.PartialEvery = 4 << 20
	t.Cleanup(func() { steps.PartialEvery = every })
	defer func(w int) { steps.Workers = w }(steps.Workers)
	steps.Workers = 1
	root := t.TempDir()
	f := newFixture(t, vfs.Default, root)
	f.journal = filepath.Join(t.TempDir(), "journal.db")
	const size = 24 << 20
	must(t, sampledb.AddFile(f.backup, "000999.blob", size, 7))
	opts := f.opts()
	opts.Mode = steps.ModeCopy
	failing := opts
	failing.FaultSpec = "write.batch-noted:eio@3"
	if _, err := Restore(context.Background(), failing); !IsRolledBack(err) {
		t.Fatalf("restore failing in the big file: %v, want rolled back", err)
	}
	tr := trashIn(vfs.Default, f.db)
	if len(tr) != 1 {
		t.Fatalf("trash: %v", tr)
	}
	outside := filepath.Join(root, "outside.blob")
	must(t, os.Link(filepath.Join(f.db+".kvrflow", tr[0], "000999.blob"), outside))
	before, err := os.ReadFile(outside)
	must(t, err)
	if _, err := Restore(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(outside)
	must(t, err)
	if !bytes.Equal(before, after) {
		t.Fatalf("the outside file changed: %d bytes before, %d after", len(before), len(after))
	}
	if got := testutil.ReadDB(t, vfs.Default, f.db); !testutil.Equal(got, f.new) {
		t.Fatal("the resumed restore did not give the backup's database")
	}
}
