package journal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A journal that appears at path while create builds its own (another
// process won the race) is neither replaced nor truncated, and create
// leaves no temporary file.
func TestCreate_JournalThatAppearedMeanwhileIsKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	if err := os.WriteFile(path, []byte("the other process's journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := create(path, Options{}); err != nil {
		t.Fatalf("create over an existing journal: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "the other process's journal" {
		t.Errorf("existing journal now holds %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d names, want 1 (the temporary file is removed)", len(ents))
	}
}

func TestLinkNoReplace_RefusesAnExistingName(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := linkNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("linkNoReplace onto an existing file = %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(b); string(got) != b {
		t.Errorf("%s now holds %q", b, got)
	}
	c := filepath.Join(dir, "c")
	if err := linkNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c); string(got) != a {
		t.Errorf("%s holds %q, want %q", c, got, a)
	}
}
