package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvrflow/kvrflow/internal/journalgen"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/kvrflow/kvrflow/audit"
	"github.com/kvrflow/kvrflow/journal"
	"github.com/kvrflow/kvrflow/steps"
)

// TestReport_IsSelfContainedHTMLListingEveryRun writes the report of a
// journal of real restores plus a run whose source and target hold markup
// and URLs, and checks: it tokenizes as HTML with every element closed in
// order, parses into html/head/title/body, has an element id="run-N" for
// every run (and a link to it), loads nothing (no script, link, img,
// iframe, object, embed, style url(), no src at all, every href a fragment),
// and shows the hostile run's fields as text.
func TestReport_IsSelfContainedHTMLListingEveryRun(t *testing.T) {
	path := auditJournal(t)
	j, err := journal.Open(path, journal.Options{})
	must(t, err)
	hostile, err := j.Begin(journal.Run{Kind: "restore", Source: `https://evil.example/<script>alert(1)</script>`,
		Target: `/db"><img src="//evil.example/x.png">`, State: steps.StateNew})
	must(t, err)
	must(t, j.Append(hostile.ID, "new", "start", "precheck", map[string]string{"error": `<iframe src="http://evil.example/">`}, "", ""))
	runs, err := j.Runs(0)
	must(t, err)
	must(t, j.Close())

	var page bytes.Buffer
	_, err = audit.Report(&page, path, audit.ReportOptions{})
	must(t, err)
	checkBalanced(t, page.Bytes())

	doc, err := html.Parse(bytes.NewReader(page.Bytes()))
	must(t, err)
	ids, hrefs := map[string]bool{}, map[string]bool{}
	var names []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		names = append(names, n.Data)
		switch n.DataAtom {
		case atom.Script, atom.Link, atom.Img, atom.Iframe, atom.Object, atom.Embed, atom.Frame, atom.Audio, atom.Video, atom.Source, atom.Base:
			t.Errorf("the report has a <%s> element", n.Data)
		case atom.Style:
			if css := textOf(n); strings.Contains(css, "url(") || strings.Contains(css, "@import") {
				t.Errorf("the style loads something: %s", css)
			}
		}
		for _, a := range n.Attr {
			v := strings.TrimSpace(strings.ToLower(a.Val))
			switch {
			case a.Key == "id":
				ids[a.Val] = true
			case a.Key == "src", a.Key == "srcset", a.Key == "action", a.Key == "data", a.Key == "poster", a.Key == "xlink:href":
				t.Errorf("<%s %s=%q>: the report loads nothing", n.Data, a.Key, a.Val)
			case a.Key == "href":
				hrefs[a.Val] = true
				if !strings.HasPrefix(v, "#") {
					t.Errorf("<%s href=%q>: not a link within the page", n.Data, a.Val)
				}
			case strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s %s=%q>: an event handler", n.Data, a.Key, a.Val)
			}
			if strings.Contains(v, "http://") || strings.Contains(v, "https://") || strings.HasPrefix(v, "//") {
				t.Errorf("<%s %s=%q> references a URL", n.Data, a.Key, a.Val)
			}
		}
	}
	for _, want := range []string{"html", "head", "title", "body", "table", "svg"} {
		if !slices.Contains(names, want) {
			t.Errorf("the report has no <%s>", want)
		}
	}
	for _, r := range runs {
		id := fmt.Sprintf("run-%d", r.ID)
		if !ids[id] || !hrefs["#"+id] {
			t.Errorf("run %d: element id=%q %v, link to it %v", r.ID, id, ids[id], hrefs["#"+id])
		}
	}
	if text := textOf(doc); !strings.Contains(text, hostile.Source) || !strings.Contains(text, `<iframe src="http://evil.example/">`) {
		t.Errorf("the hostile run's source or error is not shown as text")
	}
}

// checkBalanced tokenizes page and fails the test unless every element
// that is not void (or self-closed, as in SVG) is closed, in order.
func checkBalanced(t *testing.T, page []byte) {
	t.Helper()
	void := map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
		"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}
	z := html.NewTokenizer(bytes.NewReader(page))
	var open []string
	sawDoctype := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatalf("tokenize the report: %v", z.Err())
			}
			if len(open) > 0 {
				t.Errorf("elements never closed: %v", open)
			}
			if !sawDoctype {
				t.Error("no <!DOCTYPE html>")
			}
			return
		case html.DoctypeToken:
			sawDoctype = string(z.Text()) == "html"
		case html.StartTagToken:
			name, _ := z.TagName()
			if !void[string(name)] {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				t.Fatalf("</%s> closes nothing open (open: %v)", name, open)
			}
			open = open[:len(open)-1]
		}
	}
}

// textOf returns the text inside n.
func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// TestReport_SummarizesEveryRunAndDetailsTheSelected: on a journal of 45
// runs (one in 20 rolled back after its write step fails), the summary
// counts all of them by outcome, kind and target, and their failures by
// step; the runs shown in detail are the latest Recent, or Run, or those
// started in [Since, Until).
func TestReport_SummarizesEveryRunAndDetailsTheSelected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	must(t, journalgen.Write(path, "/srv/db", 45))
	j, err := journal.Open(path, journal.Options{ReadOnly: true})
	must(t, err)
	runs, err := j.Runs(0)
	must(t, err)
	must(t, j.Close())

	sections := func(page string) []uint64 {
		var ids []uint64
		for _, r := range runs {
			if strings.Contains(page, fmt.Sprintf(`<section id="run-%d">`, r.ID)) {
				ids = append(ids, r.ID)
			}
		}
		return ids
	}
	for _, tc := range []struct {
		name string
		opts audit.ReportOptions
		want []uint64
	}{
		{"latest 3", audit.ReportOptions{Recent: 3}, []uint64{43, 44, 45}},
		{"none", audit.ReportOptions{Recent: -1}, nil},
		{"run 20", audit.ReportOptions{Run: 20}, []uint64{20}},
		{"range", audit.ReportOptions{Since: runs[9].Start, Until: runs[12].Start}, []uint64{10, 11, 12}},
		{"since", audit.ReportOptions{Since: runs[43].Start}, []uint64{44, 45}},
	} {
		var page bytes.Buffer
		st, err := audit.Report(&page, path, tc.opts)
		must(t, err)
		if got := sections(page.String()); !slices.Equal(got, tc.want) || st.Runs != 45 || st.Detailed != len(tc.want) {
			t.Errorf("%s: runs in detail %v (stats %+v), want %v of 45", tc.name, got, st, tc.want)
		}
		for _, want := range []string{
			"<h2>All 45 runs</h2>",
			"<tr><td>committed</td><td>43</td></tr>", "<tr><td>rolled_back</td><td>2</td></tr>",
			"<tr><td>restore</td><td>45</td></tr>", "<tr><td><code>/srv/db</code></td><td>45</td></tr>",
			"<tr><td>write (fail)</td><td>2</td></tr>", "duration of the 45 ended runs", "<td>p99</td>",
		} {
			if !strings.Contains(page.String(), want) {
				t.Errorf("%s: the summary lacks %q", tc.name, want)
			}
		}
	}
	if _, err := audit.Report(io.Discard, path, audit.ReportOptions{Run: 99}); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Report of run 99 = %v, want ErrNotFound", err)
	}
}
