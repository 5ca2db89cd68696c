package audit_test

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

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
