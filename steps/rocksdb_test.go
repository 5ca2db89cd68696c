package steps

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestParseRocksMeta runs the meta files in testdata/rocksmeta through
// ParseRocksMeta and prints what it read, or its error.
func TestParseRocksMeta(t *testing.T) {
	datadriven.RunTest(t, "../testdata/rocksmeta/parse", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "parse":
			m, err := ParseRocksMeta(strings.NewReader(d.Input + "\n"))
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			var b strings.Builder
			fmt.Fprintf(&b, "schema %d, timestamp %d, sequence %d, metadata %q\n", m.Schema, m.Timestamp, m.Sequence, m.AppMeta)
			for _, f := range m.Files {
				name, err := RocksDBName(f.Path)
				if err != nil {
					name = "error: " + err.Error()
				}
				size := "?"
				if f.HasSize {
					size = fmt.Sprint(f.Size)
				}
				fmt.Fprintf(&b, "%s -> %s crc32c %d size %s\n", f.Path, name, f.CRC32C, size)
			}
			return b.String()
		}
		t.Fatalf("unknown command %s", d.Cmd)
		return ""
	})
}

// FuzzParseRocksMeta: ParseRocksMeta never panics, and every path it
// accepts maps to a plain file name or an error.
func FuzzParseRocksMeta(f *testing.F) {
	for _, seed := range []string{
		"1700000000\n52\n1\nprivate/1/CURRENT crc32 123\n",
		"schema_version 2.1\n1\n2\nmetadata 00ff\nfoo bar\n1\nshared_checksum/000008_s1_10.sst crc32 1 size 10 temp kWarm\n// FOOTER\nx y\n",
		"schema_version 2\n1\n2\n0\nshared/1.sst ni::excluded true\n",
		"1\n2\n1\nprivate/1/../x crc32 1\n",
		"schema_version 3\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseRocksMeta(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, file := range m.Files {
			if !safeRelPath(file.Path) {
				t.Fatalf("accepted unsafe path %q", file.Path)
			}
			if name, err := RocksDBName(file.Path); err == nil && strings.ContainsAny(name, "/\x00") {
				t.Fatalf("%q maps to unsafe name %q", file.Path, name)
			}
		}
	})
}
