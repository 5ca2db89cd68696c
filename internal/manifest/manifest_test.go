package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/kvrflow/kvrflow/internal/manifest"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func TestParseDatadriven(t *testing.T) {
	datadriven.Walk(t, "../../testdata/manifest", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "parse":
				data := expand(t, td)
				m, err := manifest.Parse(bytes.NewReader(data))
				if err != nil {
					if !errors.Is(err, manifest.ErrInvalid) {
						return fmt.Sprintf("error (not ErrInvalid): %v\n", err)
					}
					return fmt.Sprintf("error: %v\n", err)
				}
				return show(m)
			default:
				td.Fatalf(t, "unknown command %s", td.Cmd)
				return ""
			}
		})
	})
}

// expand turns a parse command's input into the manifest bytes: each line
// ends with "\n" (unless the command has no-newline, which leaves the last
// line without one); "checksum auto" becomes the checksum line of every
// byte before it; "repeat N TEXT" becomes TEXT repeated N times.
func expand(t *testing.T, td *datadriven.TestData) []byte {
	var b bytes.Buffer
	if td.Input == "" {
		if !td.HasArg("no-newline") {
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
	for _, line := range strings.Split(td.Input, "\n") {
		switch f := strings.Fields(line); {
		case line == "checksum auto":
			line = fmt.Sprintf("checksum %08x", crc32.Checksum(b.Bytes(), castagnoli))
		case len(f) == 3 && f[0] == "repeat":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				td.Fatalf(t, "repeat: %v", err)
			}
			line = strings.Repeat(f[2], n)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if td.HasArg("no-newline") {
		b.Truncate(b.Len() - 1)
	}
	return b.Bytes()
}

// show prints a parsed manifest.
func show(m *manifest.Manifest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "engine %s\n", m.Engine)
	fmt.Fprintf(&b, "created %s\n", m.Created.UTC().Format(time.RFC3339Nano))
	for _, f := range m.Files {
		fmt.Fprintf(&b, "file %q size %d crc32c %08x\n", f.Name, f.Size, f.CRC32C)
	}
	fmt.Fprintf(&b, "%d files, %d bytes\n", len(m.Files), m.Bytes())
	return b.String()
}

func sample() *manifest.Manifest {
	return &manifest.Manifest{
		Engine:  "pebble",
		Created: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		Files: []manifest.File{
			{Name: "000005.sst", Size: 1 << 20, CRC32C: 0x89abcdef},
			{Name: "MANIFEST-000001", Size: 301, CRC32C: 0x01234567},
			{Name: "OPTIONS-000003", Size: 0, CRC32C: 0},
		},
	}
}

// equal compares two manifests; Created by instant, not location.
func equal(a, b *manifest.Manifest) bool {
	return a.Engine == b.Engine && a.Created.Equal(b.Created) && slices.Equal(a.Files, b.Files)
}

func TestEncodeParse_RoundTrip(t *testing.T) {
	for _, m := range []*manifest.Manifest{
		sample(),
		{Engine: "pebble", Created: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Engine: "pebble", Created: time.Date(2026, 6, 1, 23, 30, 0, 0, time.FixedZone("X", 5*3600+1800))},
		{Engine: "rocksdb", Files: []manifest.File{{Name: ".hidden", Size: 0, CRC32C: 0}, {Name: "ünïcode", Size: 7, CRC32C: 0xdeadbeef}}},
		{Engine: "pebble", Files: []manifest.File{{Name: "x.sst", Size: 1<<62 - 1, CRC32C: 0xffffffff}}},
	} {
		enc := m.Encode()
		got, err := manifest.Parse(bytes.NewReader(enc))
		if err != nil {
			t.Errorf("Parse(Encode(%+v)): %v\n%s", m, err, enc)
			continue
		}
		if !equal(got, m) {
			t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", got, m)
		}
		if again := got.Encode(); !bytes.Equal(again, enc) {
			t.Errorf("Encode is not stable:\n%s\nthen\n%s", enc, again)
		}
	}
}

func TestEncode_Format(t *testing.T) {
	// The format is read by operators and other tools: the exact text is a
	// contract.
	body := "kvrflow-backup 1\n" +
		"engine pebble\n" +
		"created 2026-11-24T12:00:00Z\n" +
		"file 000005.sst 1048576 89abcdef\n" +
		"file MANIFEST-000001 301 01234567\n" +
		"file OPTIONS-000003 0 00000000\n" +
		"total 3 1048877\n"
	want := body + fmt.Sprintf("checksum %08x\n", crc32.Checksum([]byte(body), castagnoli))
	if got := string(sample().Encode()); got != want {
		t.Errorf("Encode:\n%s\nwant\n%s", got, want)
	}
}

func TestParse_EveryTruncationIsRefused(t *testing.T) {
	// A manifest cut anywhere before its last line's newline must not
	// parse: the checksum line is last and covers everything before it.
	enc := sample().Encode()
	for n := 0; n < len(enc)-1; n++ {
		if _, err := manifest.Parse(bytes.NewReader(enc[:n])); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("Parse of the first %d of %d bytes = %v, want ErrInvalid", n, len(enc), err)
		}
	}
}

func TestParse_EveryByteFlipIsRefused(t *testing.T) {
	enc := sample().Encode()
	for i := range enc {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			bad := bytes.Clone(enc)
			bad[i] ^= bit
			if m, err := manifest.Parse(bytes.NewReader(bad)); err == nil && !equal(m, sample()) {
				t.Errorf("flipping bit %#x of byte %d parsed to a different manifest %+v", bit, i, m)
			}
		}
	}
}

func TestParse_DataAfterChecksumLongerThanMaxLineIsRefused(t *testing.T) {
	data := append(sample().Encode(), strings.Repeat("x", manifest.MaxLine+1)...)
	if m, err := manifest.Parse(bytes.NewReader(data)); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("Parse of a manifest with %d bytes after its checksum line = %+v, %v; want ErrInvalid", manifest.MaxLine+1, m, err)
	}
}

func TestParse_BlankLineAfterChecksumIsRefused(t *testing.T) {
	data := append(sample().Encode(), '\n')
	if m, err := manifest.Parse(bytes.NewReader(data)); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("Parse of a manifest with a blank line after its checksum = %+v, %v; want ErrInvalid", m, err)
	}
}

func TestParse_LineOfExactlyMaxLineIsRead(t *testing.T) {
	body := "kvrflow-backup 1\nengine pebble\ncreated 2026-11-24T12:00:00Z\n" + strings.Repeat("f", manifest.MaxLine) + "\n"
	_, err := manifest.Parse(strings.NewReader(body))
	if err == nil || !strings.Contains(err.Error(), `unknown line`) {
		t.Errorf("Parse of a %d-byte line = %v, want it read whole (and refused as an unknown line)", manifest.MaxLine, err)
	}
}

func TestParse_ChecksumCoversCarriageReturns(t *testing.T) {
	enc := sample().Encode()
	bad := bytes.Replace(enc, []byte("engine pebble\n"), []byte("engine pebble\r\n"), 1)
	if m, err := manifest.Parse(bytes.NewReader(bad)); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("Parse of a manifest with a \\r the checksum did not cover = %+v, %v; want ErrInvalid", m, err)
	}
}

func TestParse_SubsecondCreatedSurvivesEncode(t *testing.T) {
	body := "kvrflow-backup 1\nengine pebble\ncreated 2026-11-24T12:00:00.5Z\ntotal 0 0\n"
	data := body + fmt.Sprintf("checksum %08x\n", crc32.Checksum([]byte(body), castagnoli))
	m, err := manifest.Parse(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	again, err := manifest.Parse(bytes.NewReader(m.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Created.Equal(m.Created) {
		t.Errorf("created %s became %s", m.Created, again.Created)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"000005.sst": true, "MANIFEST-000001": true, "OPTIONS-000003": true, ".hidden": true, "...": true,
		"": false, ".": false, "..": false, "../x": false, "/abs": false, "a/b": false, `a\b`: false,
		"a\x00b": false, manifest.Name: false, strings.Repeat("n", 255): true, strings.Repeat("n", 256): false,
	} {
		if got := manifest.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

// reseal replaces data's last checksum line (or appends one) with the
// correct checksum of the bytes before it, so the fuzzer reaches the
// checks behind the checksum.
func reseal(data []byte) []byte {
	body := data
	if i := bytes.LastIndex(data, []byte("\nchecksum ")); i >= 0 {
		body = data[:i+1]
	} else if bytes.HasPrefix(data, []byte("checksum ")) {
		body = nil
	} else if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(bytes.Clone(body), '\n')
	}
	out := bytes.Clone(body)
	return fmt.Appendf(out, "checksum %08x\n", crc32.Checksum(body, castagnoli))
}

func TestReseal_MakesTheChecksumValid(t *testing.T) {
	// FuzzParse relies on reseal to get past the checksum.
	enc := sample().Encode()
	for _, data := range [][]byte{
		enc,
		append(bytes.Clone(enc[:len(enc)-9]), "00000000\n"...), // wrong checksum
		enc[:bytes.LastIndex(enc, []byte("checksum"))],         // no checksum line
		enc[:bytes.LastIndex(enc, []byte("checksum"))-1],       // nor the newline before it
	} {
		m, err := manifest.Parse(bytes.NewReader(reseal(data)))
		if err != nil || !equal(m, sample()) {
			t.Errorf("Parse(reseal(%q)) = %+v, %v", data, m, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample().Encode())
	f.Add((&manifest.Manifest{Engine: "pebble"}).Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
		checkParse(t, reseal(data))
	})
}

// checkParse parses data: it must not panic, must fail only with
// ErrInvalid, and if it parses, Encode of the result must parse to an
// equal manifest and encode to the same bytes again.
func checkParse(t *testing.T, data []byte) {
	m, err := manifest.Parse(bytes.NewReader(data))
	if err != nil {
		if !errors.Is(err, manifest.ErrInvalid) {
			t.Fatalf("Parse error %v is not ErrInvalid", err)
		}
		return
	}
	for _, f := range m.Files {
		if !manifest.ValidName(f.Name) || f.Size < 0 {
			t.Fatalf("Parse accepted file %+v", f)
		}
	}
	enc := m.Encode()
	m2, err := manifest.Parse(bytes.NewReader(enc))
	if err != nil {
		t.Fatalf("Parse(Encode(Parse(%q))) = %v\nencoded:\n%s", data, err, enc)
	}
	// Encode writes whole seconds (see TestParse_SubsecondCreatedSurvivesEncode).
	want := *m
	want.Created = m.Created.Truncate(time.Second)
	if !equal(m2, &want) {
		t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v\ninput %q", m2, &want, data)
	}
	if again := m2.Encode(); !bytes.Equal(again, enc) {
		t.Fatalf("Encode not stable:\n%s\nthen\n%s", enc, again)
	}
}
