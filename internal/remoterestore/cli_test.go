package remoterestore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/internal/s3test"
	"github.com/kvrflow/kvrflow/internal/testutil"
)

// secretsIn returns which of the secrets the bytes hold.
func secretsIn(b []byte, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			found = append(found, s)
		}
	}
	return found
}

// TestCLI_RestoreFromS3KeepsSecretsOut restores through the binary with
// the credentials in the environment, then fails runs with credentials
// put in the URL (refused) and a corrupt object (rolled back): no secret
// or access key is in the journal file's bytes, the JSON log on stderr or
// the --json document, and the journal records the URL as given (it
// holds none).
func TestCLI_RestoreFromS3KeepsSecretsOut(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, s, 200)
	const urlSecret = "url-secret-0f1e2d3c4b5a6978"
	secrets := []string{s3test.Secret, s3test.Access, urlSecret}
	var outputs [][]byte
	common := []string{"--json", "--log-format", "json", "--log-level", "debug"}

	r := run(t, nil, append([]string{"restore", "--from", s.url("pebble"), "--db", f.db, "--rate-limit", "64MiB/s"}, common...)...)
	if r.code != 0 {
		t.Fatalf("restore: %s", r)
	}
	if got := f.keys(t); !testutil.Equal(got, f.new) {
		t.Fatal("restored database differs from the backup")
	}
	var doc struct {
		Source  string `json:"source"`
		Outcome string `json:"outcome"`
		Run     struct {
			Source string `json:"source"`
		} `json:"run"`
	}
	must(t, json.Unmarshal([]byte(r.stdout), &doc))
	if doc.Source != s.url("pebble") || doc.Run.Source != s.url("pebble") || doc.Outcome != "committed" {
		t.Errorf("--json says source %q, run source %q, outcome %q", doc.Source, doc.Run.Source, doc.Outcome)
	}
	outputs = append(outputs, []byte(r.stdout), []byte(r.stderr))

	bad := []struct {
		name, from, mention string
		code                int
	}{
		{"secret as a URL parameter", s.url("pebble") + "&aws_secret_access_key=" + urlSecret, "unknown query parameter", 2},
		{"credentials in the URL", strings.Replace(s.url("pebble"), "s3://", "s3://"+s3test.Access+":"+urlSecret+"@", 1), "credentials in the URL", 2},
		{"missing prefix", s.url("nothing-here"), "nothing is stored under this prefix", 2},
	}
	for _, b := range bad {
		before := f.snapshot(t)
		r := run(t, nil, append([]string{"restore", "--from", b.from, "--db", f.db}, common...)...)
		if r.code != b.code || !strings.Contains(r.stderr, b.mention) {
			t.Errorf("%s: want exit %d naming %q: %s", b.name, b.code, b.mention, r)
		}
		assertUnchanged(t, before, f.snapshot(t))
		outputs = append(outputs, []byte(r.stdout), []byte(r.stderr))
	}

	// A run that begins and is rolled back journals its error.
	name := firstSST(t, f.backup)
	data, err := os.ReadFile(filepath.Join(f.backup, name))
	must(t, err)
	s.upload(t, f.backup, "corrupt")
	data[len(data)/2] ^= 0x01
	s.put(t, "corrupt", name, data)
	before := f.snapshot(t)
	// --no-delta: DB holds the backup already, and delta would hard-link
	// its copy of the table instead of reading the corrupt object.
	r = run(t, nil, append([]string{"restore", "--from", s.url("corrupt"), "--db", f.db, "--no-delta"}, common...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "checksum mismatch") || !strings.Contains(r.stderr, "s3://"+s.bucket+"/corrupt/"+name) {
		t.Errorf("corrupt object: want exit 2 naming the object and the checksum: %s", r)
	}
	assertUnchanged(t, before, f.snapshot(t))
	outputs = append(outputs, []byte(r.stdout), []byte(r.stderr))

	j, err := os.ReadFile(f.db + ".kvrflow/journal.db")
	must(t, err)
	outputs = append(outputs, j)
	for i, b := range outputs {
		if found := secretsIn(b, secrets...); len(found) > 0 {
			t.Errorf("output %d holds %q:\n%s", i, found, b)
		}
	}
	if !strings.Contains(string(j), "s3://"+s.bucket+"/pebble") {
		t.Error("the journal does not name the source")
	}
}

// TestCLI_RateLimitValues: --rate-limit takes binary and decimal units;
// anything else is a usage error (exit 2) before anything is done.
func TestCLI_RateLimitValues(t *testing.T) {
	s := newServer(t)
	f := newPebbleFixture(t, s, 100)
	for _, v := range []string{"fast", "-1MiB/s", "10XB/s", "100B/s"} {
		r := run(t, nil, "restore", "--from", s.url("pebble"), "--db", f.db, "--rate-limit", v)
		if r.code != 2 || !strings.Contains(r.stderr, "--rate-limit") {
			t.Errorf("--rate-limit %s: want exit 2: %s", v, r)
		}
	}
	if _, err := os.Stat(f.db + ".kvrflow"); err == nil {
		t.Error("a refused restore made DB.kvrflow")
	}
	r := run(t, nil, "restore", "--from", s.url("pebble"), "--db", f.db, "--rate-limit", "512KiB/s")
	if r.code != 0 {
		t.Fatalf("--rate-limit 512KiB/s: %s", r)
	}
}
