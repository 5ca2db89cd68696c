package audit_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kvrflow/kvrflow/audit"
)

// The journal's layout, as an outside tool (or an attacker) sees it.
var (
	bucketRuns   = []byte("runs")
	bucketEvents = []byte("events")
	bucketBegins = []byte("begins")
)

func key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// tamperCase is one edit of a journal, made with bbolt directly, and the
// first problem verify must report: run, and seq (0 for the run itself).
type tamperCase struct {
	kind     string // what sort of edit, for the tally
	name     string
	run, seq uint64
	edit     func(tx *bolt.Tx) error
}

// TestTamper_VerifyCatchesEveryEdit records a journal of real restores,
// then edits a copy of it per case, with bbolt directly: every byte of one
// stored event flipped (all bits, then the lowest bit), each event
// deleted, neighbouring and cross-run events swapped, a run truncated
// (also with its run record's count and state made to match), a run's
// outcome edited, its mode edited, the last run cut off the journal. For
// each case audit.Verify must report, as its first problem, the
// run and sequence number the case names, and kvrflow journal verify must
// exit 4 naming the same (under -short, for one byte flip in 16).
func TestTamper_VerifyCatchesEveryEdit(t *testing.T) {
	orig := auditJournal(t)
	trimJournal(t, orig) // each case copies it
	cases := tamperCases(t, orig)
	bin := buildCLI(t)

	type result struct {
		c      tamperCase
		caught bool
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				// Under -short the CLI checks one byte flip in 16 (and every
				// other case); Verify checks them all.
				cli := !testing.Short() || !strings.HasPrefix(cases[i].kind, "flip") || i%16 == 0
				results[i] = result{cases[i], checkTamper(t, bin, orig, cases[i], cli)}
			}
		})
	}
	for i := range cases {
		work <- i
	}
	close(work)
	wg.Wait()

	tried, caught := map[string]int{}, map[string]int{}
	var kinds []string
	for _, r := range results {
		if tried[r.c.kind] == 0 {
			kinds = append(kinds, r.c.kind)
		}
		tried[r.c.kind]++
		if r.caught {
			caught[r.c.kind]++
		}
	}
	total, totalCaught := 0, 0
	for _, k := range kinds {
		t.Logf("tamper %-34s tried %4d, caught %4d", k, tried[k], caught[k])
		total += tried[k]
		totalCaught += caught[k]
	}
	t.Logf("tamper cases tried %d, caught %d (%.0f %%)", total, totalCaught, 100*float64(totalCaught)/float64(total))
	if totalCaught != total {
		t.Errorf("verify missed %d of %d tamper cases", total-totalCaught, total)
	}
}

// checkTamper applies c to a copy of the journal at orig and reports
// whether Verify and (if cli) kvrflow journal verify caught it,
// naming the run and seq. It fails the test with what they said if not.
func checkTamper(t *testing.T, bin, orig string, c tamperCase, cli bool) bool {
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := copyFile(orig, path); err != nil {
		t.Error(err)
		return false
	}
	if err := editJournal(path, c.edit); err != nil {
		t.Errorf("%s: edit: %v", c.name, err)
		return false
	}
	ok := true
	rep, err := audit.Verify(path, nil)
	switch {
	case err != nil:
		t.Errorf("%s: Verify: %v", c.name, err)
		ok = false
	case rep.OK():
		t.Errorf("%s: Verify found nothing wrong", c.name)
		ok = false
	case rep.Problems[0].Run != c.run || rep.Problems[0].Seq != c.seq:
		t.Errorf("%s: Verify's first problem is %s, want run %d seq %d", c.name, rep.Problems[0], c.run, c.seq)
		ok = false
	}
	if !cli {
		return ok
	}
	cmd := exec.Command(bin, "journal", "verify", "--journal", path, "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("%s: kvrflow journal verify: %v, want exit 4\nstdout:\n%s\nstderr:\n%s", c.name, err, &stdout, &stderr)
		return false
	}
	var doc struct {
		FirstProblem struct{ Run, Seq uint64 } `json:"first_problem"`
		ExitCode     int                       `json:"exit_code"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil || doc.FirstProblem.Run != c.run || doc.FirstProblem.Seq != c.seq || doc.ExitCode != 4 {
		t.Errorf("%s: kvrflow journal verify --json: %+v (%v), want first problem run %d seq %d\n%s", c.name, doc, err, c.run, c.seq, &stdout)
		return false
	}
	return ok
}

// tamperCases lists the edits of the journal at path.
func tamperCases(t *testing.T, path string) []tamperCase {
	t.Helper()
	// The runs' event counts and one event's stored value.
	counts := map[uint64]uint64{}
	var target []byte
	const targetRun, targetSeq = auditCommitted, 2 // precheck -checked-> clean, with details
	if err := viewJournal(path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEachBucket(func(k []byte) error {
			counts[binary.BigEndian.Uint64(k)] = uint64(tx.Bucket(bucketEvents).Bucket(k).Stats().KeyN)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	must(t, viewJournal(path, func(tx *bolt.Tx) error {
		target = bytes.Clone(tx.Bucket(bucketEvents).Bucket(key(targetRun)).Get(key(targetSeq)))
		return nil
	}))
	if len(target) < 100 || counts[auditCommitted] < 5 || counts[auditCommitted2] != counts[auditCommitted] {
		t.Fatalf("unexpected journal: event counts %v, target event %q", counts, target)
	}

	var cases []tamperCase
	events := func(tx *bolt.Tx, run uint64) *bolt.Bucket { return tx.Bucket(bucketEvents).Bucket(key(run)) }
	for i := range target {
		for _, mask := range []byte{0xff, 0x01} {
			cases = append(cases, tamperCase{kind: fmt.Sprintf("flip byte (xor %#02x)", mask), name: fmt.Sprintf("byte %d ^ %#02x", i, mask),
				run: targetRun, seq: targetSeq, edit: func(tx *bolt.Tx) error {
					v := bytes.Clone(target)
					v[i] ^= mask
					return events(tx, targetRun).Put(key(targetSeq), v)
				}})
		}
	}
	n := counts[auditCommitted]
	for seq := uint64(1); seq < n; seq++ {
		cases = append(cases, tamperCase{kind: "delete an event", name: fmt.Sprintf("delete event %d", seq),
			run: auditCommitted, seq: seq, edit: func(tx *bolt.Tx) error { return events(tx, auditCommitted).Delete(key(seq)) }})
		cases = append(cases, tamperCase{kind: "swap two events of a run", name: fmt.Sprintf("swap events %d and %d", seq, seq+1),
			run: auditCommitted, seq: seq, edit: func(tx *bolt.Tx) error {
				return swap(events(tx, auditCommitted), seq, events(tx, auditCommitted), seq+1)
			}})
	}
	for seq := uint64(1); seq <= n; seq++ {
		cases = append(cases, tamperCase{kind: "swap events across runs", name: fmt.Sprintf("swap event %d of runs 1 and 2", seq),
			run: auditCommitted, seq: seq, edit: func(tx *bolt.Tx) error {
				return swap(events(tx, auditCommitted), seq, events(tx, auditCommitted2), seq)
			}})
	}
	for cut := uint64(1); cut <= n; cut++ {
		cases = append(cases, tamperCase{kind: "truncate a run", name: fmt.Sprintf("delete the last %d events", cut),
			run: auditCommitted, edit: func(tx *bolt.Tx) error { return truncate(events(tx, auditCommitted), n, cut) }})
		cases = append(cases, tamperCase{kind: "truncate a run, fix its count", name: fmt.Sprintf("delete the last %d events, fix the run record", cut),
			run: auditCommitted, edit: func(tx *bolt.Tx) error {
				if err := truncate(events(tx, auditCommitted), n, cut); err != nil {
					return err
				}
				return editRun(tx, auditCommitted, func(r map[string]any) {
					r["events"] = n - cut
					r["state"] = lastTo(events(tx, auditCommitted))
				})
			}})
	}
	for _, e := range []struct {
		run     uint64
		outcome any // nil: removed (in flight)
	}{
		{auditCommitted, "rolled_back"}, {auditCommitted2, "failed"}, {auditCommitted, nil},
		{auditRolledBack, "committed"}, {auditRolledBack, nil}, {auditInFlight, "committed"}, {auditInFlight, "rolled_back"},
	} {
		cases = append(cases, tamperCase{kind: "edit a run's outcome", name: fmt.Sprintf("run %d outcome %v", e.run, e.outcome),
			run: e.run, edit: func(tx *bolt.Tx) error {
				return editRun(tx, e.run, func(r map[string]any) {
					if e.outcome == nil {
						delete(r, "outcome")
					} else {
						r["outcome"] = e.outcome
					}
				})
			}})
	}
	cases = append(cases, tamperCase{kind: "edit a run's mode", name: "run 2 mode copy", run: auditCommitted2,
		edit: func(tx *bolt.Tx) error {
			return editRun(tx, auditCommitted2, func(r map[string]any) { r["mode"] = "copy-edited" })
		}})
	cases = append(cases, tamperCase{kind: "remove a whole run", name: "remove run 2", run: auditCommitted2 + 1,
		edit: func(tx *bolt.Tx) error { return removeRun(tx, auditCommitted2) }})
	cases = append(cases, tamperCase{kind: "remove the last run", name: "remove run 4", run: auditInFlight - 1,
		edit: func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("inflight")).Delete(key(auditInFlight)); err != nil {
				return err
			}
			return removeRun(tx, auditInFlight)
		}})
	return cases
}

func swap(a *bolt.Bucket, ka uint64, b *bolt.Bucket, kb uint64) error {
	va, vb := bytes.Clone(a.Get(key(ka))), bytes.Clone(b.Get(key(kb)))
	if va == nil || vb == nil {
		return fmt.Errorf("swap: no event %d or %d", ka, kb)
	}
	if err := a.Put(key(ka), vb); err != nil {
		return err
	}
	return b.Put(key(kb), va)
}

// truncate deletes the last cut of the n events of b.
func truncate(b *bolt.Bucket, n, cut uint64) error {
	for seq := n - cut + 1; seq <= n; seq++ {
		if err := b.Delete(key(seq)); err != nil {
			return err
		}
	}
	return nil
}

// lastTo returns the state the last event of b leads to ("new" if none).
func lastTo(b *bolt.Bucket) string {
	// Not Cursor.Last: on a bucket of more than one page whose every key
	// was deleted in this transaction, bbolt 1.4.3's Last loops forever
	// (its prev never leaves the empty pages). Runs whose written record
	// lists each file's identity span more than one page.
	var v []byte
	_ = b.ForEach(func(_, val []byte) error { v = val; return nil })
	if v == nil {
		return "new"
	}
	var ev struct{ To string }
	_ = json.Unmarshal(v[:bytes.LastIndexByte(v, '\n')], &ev)
	return ev.To
}

// editRun rewrites run id's record (plain JSON) through fn.
func editRun(tx *bolt.Tx, id uint64, fn func(map[string]any)) error {
	runs := tx.Bucket(bucketRuns)
	var r map[string]any
	if err := json.Unmarshal(runs.Get(key(id)), &r); err != nil {
		return err
	}
	fn(r)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return runs.Put(key(id), b)
}

// removeRun deletes every record of run id.
func removeRun(tx *bolt.Tx, id uint64) error {
	if err := tx.Bucket(bucketRuns).Delete(key(id)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketBegins).Delete(key(id)); err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).DeleteBucket(key(id))
}

func editJournal(path string, fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	if err := db.Update(fn); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// trimJournal cuts the journal at path to the pages bbolt uses: the room
// Open reserves beyond them (journal.DefaultReserve) holds nothing, and
// would make every copy of it 8 MiB larger.
func trimJournal(t *testing.T, path string) {
	t.Helper()
	var used int64
	if err := viewJournal(path, func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, used); err != nil {
		t.Fatal(err)
	}
}

func viewJournal(path string, fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// buildCLI builds the kvrflow command into a temporary directory of t.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvrflow")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/kvrflow")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kvrflow: %v\n%s", err, out)
	}
	return bin
}
