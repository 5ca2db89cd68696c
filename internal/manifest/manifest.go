// Package manifest reads and writes the manifest kvrflow puts in every
// Pebble backup it makes: the list of the backup's files with their sizes
// and crc32c checksums.
//
// The format is line-oriented text, so an operator can read it and a
// reader needs bounded memory:
//
//	kvrflow-backup 1
//	engine pebble
//	created 2026-11-24T12:00:00Z
//	file 000005.sst 1048576 89abcdef
//	file MANIFEST-000001 301 01234567
//	total 2 1048877
//	checksum 76543210
//
// "file" lines give NAME SIZE CRC32C (8 hex digits); "total" repeats the
// count and byte sum; "checksum" is the crc32c of every byte before it.
//
// # Caveats
//
// Names are plain file names: no separators, no "." or "..", nothing that
// could point outside the backup. A line longer than MaxLine or more than
// MaxFiles entries are refused, so a hostile manifest cannot exhaust memory.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"
)

// Name is the manifest's file name inside a backup directory.
const Name = "KVRFLOW-BACKUP"

// Version is the format version this package writes and reads.
const Version = 1

// Limits of what Parse accepts.
const (
	MaxLine  = 4096
	MaxFiles = 1 << 20
)

// ErrInvalid is returned (wrapped, with the line number and cause) by Parse
// for a manifest that is malformed, unsafe, truncated or of another
// version.
var ErrInvalid = errors.New("invalid backup manifest")

var table = crc32.MakeTable(crc32.Castagnoli)

// File is one file of a backup.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// Manifest describes a backup.
type Manifest struct {
	Engine  string
	Created time.Time
	Files   []File
}

// Bytes returns the sum of the files' sizes.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Encode returns the manifest's text.
func (m *Manifest) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "kvrflow-backup %d\nengine %s\ncreated %s\n", Version, m.Engine, m.Created.UTC().Format(time.RFC3339Nano))
	for _, f := range m.Files {
		fmt.Fprintf(&b, "file %s %d %08x\n", f.Name, f.Size, f.CRC32C)
	}
	fmt.Fprintf(&b, "total %d %d\n", len(m.Files), m.Bytes())
	fmt.Fprintf(&b, "checksum %08x\n", crc32.Checksum(b.Bytes(), table))
	return b.Bytes()
}

// ValidName reports whether name is a plain file name, safe to join to a
// directory.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 &&
		!strings.ContainsAny(name, "/\\\x00") && name != Name
}

// Parse reads a manifest from r.
func Parse(r io.Reader) (*Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), MaxLine+1) // +1: the newline
	sc.Split(splitLines)
	crc := uint32(0)
	m := &Manifest{}
	seen := map[string]bool{}
	lineNo := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrInvalid, lineNo, fmt.Sprintf(format, args...))
	}
	var total *[2]int64
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if strings.ContainsRune(line, '\r') {
			// Encode never writes one, and the scanner would hide it from
			// the checksum.
			return nil, bad("carriage return in line")
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil, bad("empty line")
		}
		if lineNo == 1 {
			if len(fields) != 2 || fields[0] != "kvrflow-backup" {
				return nil, bad("not a kvrflow backup manifest")
			}
			if fields[1] != strconv.Itoa(Version) {
				return nil, bad("unknown version %q (this kvrflow reads version %d)", fields[1], Version)
			}
			crc = crc32.Update(crc, table, append([]byte(line), '\n'))
			continue
		}
		if fields[0] == "checksum" {
			if total == nil {
				return nil, bad("checksum before total")
			}
			if len(fields) != 2 {
				return nil, bad("malformed checksum line")
			}
			want, err := strconv.ParseUint(fields[1], 16, 32)
			if err != nil || uint32(want) != crc {
				return nil, bad("checksum mismatch: the manifest is corrupt")
			}
			if sc.Scan() || errors.Is(sc.Err(), bufio.ErrTooLong) {
				return nil, bad("data after checksum")
			}
			if err := sc.Err(); err != nil {
				return nil, err // an I/O error, not a bad manifest
			}
			if m.Engine == "" {
				return nil, bad("no engine line")
			}
			return m, nil
		}
		if total != nil {
			return nil, bad("data after total")
		}
		crc = crc32.Update(crc, table, append([]byte(line), '\n'))
		switch fields[0] {
		case "engine":
			if len(fields) != 2 || m.Engine != "" {
				return nil, bad("malformed engine line")
			}
			m.Engine = fields[1]
		case "created":
			t, err := time.Parse(time.RFC3339Nano, strings.Join(fields[1:], " "))
			if err != nil {
				return nil, bad("bad time: %v", err)
			}
			m.Created = t
		case "file":
			if len(fields) != 4 {
				return nil, bad("want: file NAME SIZE CRC32C")
			}
			f := File{Name: fields[1]}
			if !ValidName(f.Name) {
				return nil, bad("unsafe file name %q", f.Name)
			}
			if seen[f.Name] {
				return nil, bad("file %q listed twice", f.Name)
			}
			size, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil || size < 0 {
				return nil, bad("bad size %q", fields[2])
			}
			c, err := strconv.ParseUint(fields[3], 16, 32)
			if err != nil || len(fields[3]) != 8 {
				return nil, bad("bad crc32c %q", fields[3])
			}
			if len(m.Files) >= MaxFiles {
				return nil, bad("more than %d files", MaxFiles)
			}
			f.Size, f.CRC32C = size, uint32(c)
			seen[f.Name] = true
			m.Files = append(m.Files, f)
		case "total":
			if len(fields) != 3 {
				return nil, bad("want: total COUNT BYTES")
			}
			n, err1 := strconv.ParseInt(fields[1], 10, 64)
			b, err2 := strconv.ParseInt(fields[2], 10, 64)
			if err1 != nil || err2 != nil || n != int64(len(m.Files)) || b != m.Bytes() {
				return nil, bad("total does not match the files listed")
			}
			total = &[2]int64{n, b}
		default:
			return nil, bad("unknown line %q", fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrInvalid, lineNo+1, MaxLine)
		}
		return nil, err // an I/O error, not a bad manifest
	}
	return nil, fmt.Errorf("%w: truncated after line %d (no checksum line)", ErrInvalid, lineNo)
}

// splitLines is bufio.ScanLines without its dropping of a '\r' before the
// newline: the checksum covers every byte, so none may be hidden.
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}
