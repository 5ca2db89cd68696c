package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// LdbTimeout bounds one ldb run of Verify.
var LdbTimeout = 10 * time.Minute

// checkRocksDB checks a staged RocksDB database: its structure (CURRENT
// names a MANIFEST that exists; Write already compared every file's size
// and crc32c with the source's), then, when ldb is on PATH and staging is
// on the real disk, `ldb --db=STAGING checkconsistency`, which opens the
// database read-only and checks every file the MANIFEST lists. It returns
// a description of the checks that ran. It runs at every verification
// level: it is RocksDB's open check, and costs one short ldb process.
func (e *Env) checkRocksDB(ctx context.Context, staging string) (string, error) {
	current := filepath.Join(staging, "CURRENT")
	f, err := e.FS.Open(current)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s: no CURRENT file", ErrVerify, staging)
	}
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	f.Close()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", current, err)
	}
	name := strings.TrimSuffix(string(b), "\n")
	if !strings.HasPrefix(name, "MANIFEST-") || strings.ContainsAny(name, "/\n\x00") {
		return "", fmt.Errorf("%w: %s: CURRENT holds %q, not a MANIFEST name", ErrVerify, current, b)
	}
	if ok, err := e.FS.Exists(filepath.Join(staging, name)); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("%w: %s: CURRENT names %s, which is missing", ErrVerify, staging, name)
	}
	check := "structure (CURRENT names an existing MANIFEST)"
	ldb, err := exec.LookPath("ldb")
	switch {
	case !e.FS.IsDisk():
		return check + "; ldb skipped: staging is not on the real disk", nil
	case err != nil:
		e.Log.Warn().Msg("ldb not on PATH: the staged RocksDB database is checked for structure only")
		return check + "; ldb not on PATH: checkconsistency skipped", nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LdbTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, ldb, "--db="+staging, "checkconsistency")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.Join(strings.Fields(out.String()), " ")
		return "", fmt.Errorf("%w: ldb --db=%s checkconsistency: %w: %s", ErrVerify, staging, err, msg)
	}
	return check + "; ldb checkconsistency OK", nil
}
