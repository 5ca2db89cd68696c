package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kvrflow/kvrflow/internal/fsx"
)

// TestParseSSTDumpVerify reads outputs of `sst_dump --file=DIR
// --command=verify --verify_checksum` as RocksDB 7.8.3's (Debian
// rocksdb-tools) prints them, all with exit status 0: a table passes only
// when "The file is ok" follows its Process line and stderr says nothing.
func TestParseSSTDumpVerify(t *testing.T) {
	const dir = "/s"
	tables := []string{"000008.sst", "000013.sst"}
	for _, tc := range []struct {
		name           string
		stdout, stderr string
		want           []sstDumpProblem
	}{
		{name: "all ok",
			stdout: "options.env is 0x7f21784ed5a0\nProcess /s/000013.sst\nSst file format: block-based\nThe file is ok\n" +
				"Process /s/000008.sst\nSst file format: block-based\nThe file is ok\n"},
		{name: "a bad data block: stderr only, exit 0",
			stdout: "options.env is 0x7f2ba90ed5a0\nProcess /s/000013.sst\nSst file format: block-based\nThe file is ok\n" +
				"Process /s/000008.sst\nSst file format: block-based\n",
			stderr: "/s/000008.sst is corrupted: Corruption: block checksum mismatch: stored = 1767496480, computed = 327911169, type = 4  in /s/000008.sst offset 0 size 837\n",
			want: []sstDumpProblem{{Table: "000008.sst", Corrupt: true,
				Cause: "Corruption: block checksum mismatch: stored = 1767496480, computed = 327911169, type = 4 in 000008.sst offset 0 size 837"}}},
		{name: "a bad properties block: the table does not open",
			stdout: "Process /s/000008.sst\nNot able to read table properties\nSst file format: block-based(old version)\n" +
				"Process /s/000013.sst\nSst file format: block-based\nThe file is ok\n",
			stderr: "/s/000008.sst: Corruption: block checksum mismatch: stored = 2239556826, computed = 2439874818, type = 4  in /s/000008.sst offset 3338 size 845\n",
			want: []sstDumpProblem{{Table: "000008.sst", Corrupt: true,
				Cause: "Corruption: block checksum mismatch: stored = 2239556826, computed = 2439874818, type = 4 in 000008.sst offset 3338 size 845"}}},
		{name: "an empty file (file mode adds 'is not a valid SST file')",
			stdout: "Process /s/000008.sst\nProcess /s/000013.sst\nThe file is ok\n",
			stderr: "/s/000008.sst: Operation aborted: /s/000008.sst: Empty file\n/s/000008.sst is not a valid SST file\n",
			want:   []sstDumpProblem{{Table: "000008.sst", Cause: "Operation aborted: 000008.sst: Empty file"}}},
		{name: "a table never processed (sst_dump stopped)",
			stdout: "Process /s/000008.sst\nThe file is ok\n",
			want:   []sstDumpProblem{{Table: "000013.sst", Cause: `no "The file is ok"`}}},
		{name: "processed but no verdict",
			stdout: "Process /s/000008.sst\nThe file is ok\nProcess /s/000013.sst\nSst file format: block-based\n",
			want:   []sstDumpProblem{{Table: "000013.sst", Cause: `no "The file is ok"`}}},
		{name: "an ok line belongs to the table before it only",
			stdout: "Process /s/000008.sst\nProcess /s/000013.sst\nThe file is ok\n",
			want:   []sstDumpProblem{{Table: "000008.sst", Cause: `no "The file is ok"`}}},
		{name: "a stderr line naming no table fails the check",
			stdout: "Process /s/000008.sst\nThe file is ok\nProcess /s/000013.sst\nThe file is ok\n",
			stderr: "NotFound: /s: No such file or directory\n",
			want:   []sstDumpProblem{{Cause: "NotFound: /s: No such file or directory"}}},
		{name: "a table sst_dump names that is not listed still fails",
			stdout: "Process /s/000008.sst\nThe file is ok\nProcess /s/000013.sst\nThe file is ok\n",
			stderr: "/s/000099.sst: Corruption: bad block\n",
			want:   []sstDumpProblem{{Table: "000099.sst", Cause: "Corruption: bad block", Corrupt: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseSSTDumpVerify(dir, tables, tc.stdout, tc.stderr)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// fakeSSTDump puts a shell script named sst_dump first on PATH.
func fakeSSTDump(t *testing.T, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "sst_dump"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestVerifyTables_FailuresNeverPass runs verifyTables against fake
// sst_dumps that fail in each way a real one can: a corruption reported
// with exit 0 (the real tool's habit), a crash after a table, a hang
// (the timeout), and the run's context ending.
func TestVerifyTables_FailuresNeverPass(t *testing.T) {
	staging := t.TempDir()
	for _, n := range []string{"000008.sst", "CURRENT"} {
		if err := os.WriteFile(filepath.Join(staging, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &Env{FS: fsx.New(vfs.Default, nil), src: &Source{Kind: KindCheckpoint,
		Files: []SourceFile{{Name: "000008.sst", Path: "/backup/000008.sst", Size: 1}}}}
	echoProcess := `echo "Process $(echo "$1" | sed 's/^--file=//')/000008.sst"; `
	for _, tc := range []struct {
		name, script string
		cancel       bool
		is           error
		want         string
	}{
		{name: "ok", script: echoProcess + `echo "The file is ok"`},
		{name: "corrupt, exit 0", script: echoProcess + `echo "${1#--file=}/000008.sst is corrupted: Corruption: block checksum mismatch" >&2`,
			is: ErrBadSource, want: "invalid backup: /backup/000008.sst: Corruption: block checksum mismatch (sst_dump verify; the checkpoint's own table is corrupt)"},
		{name: "crash after Process", script: echoProcess + `kill -SEGV $$`,
			is: ErrVerify, want: `sst_dump verify of ` + staging + `: 000008.sst: no "The file is ok"; sst_dump: signal: segmentation fault`},
		{name: "all ok but exit 1", script: echoProcess + `echo "The file is ok"; exit 1`,
			is: ErrVerify, want: "exit status 1"},
		{name: "hang", script: `exec sleep 5`, is: ErrVerify, want: "no answer within 200ms"},
		{name: "context ends", script: `exec sleep 5`, cancel: true, is: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeSSTDump(t, tc.script)
			defer func(d time.Duration) { SSTDumpTimeout = d }(SSTDumpTimeout)
			SSTDumpTimeout = 200 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			n, err := e.verifyTables(ctx, staging)
			switch {
			case tc.is == nil && (err != nil || n != 1):
				t.Fatalf("verifyTables = %d, %v; want 1 table ok", n, err)
			case tc.is == nil:
			case !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v; want %v containing %q", err, tc.is, tc.want)
			case tc.is == ErrVerify && errors.Is(err, ErrBadSource), tc.is == context.Canceled && errors.Is(err, ErrVerify):
				t.Fatalf("err = %v: classified too strongly", err)
			}
		})
	}
}

// TestPrecheck_FullRocksDBNeedsSSTDump: at --verify full a RocksDB source
// with no sst_dump on PATH is refused by Precheck (ErrBadOption), not
// restored with its tables' blocks unread; other levels do not need it.
func TestPrecheck_FullRocksDBNeedsSSTDump(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "checkpoint")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "CURRENT"), []byte("MANIFEST-000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	layout, err := NewLayout(filepath.Join(root, "db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{FS: fsx.New(vfs.Default, nil), Layout: layout, Source: src, Verify: VerifyFull}
	_, err = e.precheck(context.Background(), nil)
	if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "needs sst_dump on PATH (Debian package rocksdb-tools)") {
		t.Fatalf("precheck: %v, want ErrBadOption naming sst_dump", err)
	}
	for _, level := range []string{VerifyChecksum, VerifySize} {
		if err := CheckSSTDump(EngineRocksDB, level); err != nil {
			t.Errorf("level %s: %v", level, err)
		}
	}
	if err := CheckSSTDump(EnginePebble, VerifyFull); err != nil {
		t.Errorf("pebble at full: %v", err)
	}
}
