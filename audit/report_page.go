package audit

import (
	"fmt"
	"html/template"
	"time"

	"github.com/kvrflow/kvrflow/fsm"
)

type reportPage struct {
	Journal, Generated string
	Summary            *summary
	Selection          string // which runs are shown in detail
	Runs               []reportRun
}

type reportRun struct {
	*Timeline
	Start    string // the state the begin record leads to
	Duration string
	Path     template.HTML
}

// startState is the state run tl began in: def's start state, or its
// first event's if def is unknown.
func startState(def *fsm.Definition, tl *Timeline) string {
	switch {
	case def != nil:
		return def.Start
	case len(tl.Steps) > 0:
		return tl.Steps[0].From
	}
	return "?"
}

// pathSVG draws the states a run went through, left to right, from def's
// start state (the first event's, if def is unknown), with the events
// between them; the last state is filled by outcome.
func pathSVG(def *fsm.Definition, tl *Timeline) template.HTML {
	states := []string{startState(def, tl)}
	var events []string
	for _, s := range tl.Steps {
		if s.Event == fsm.NoteEvent {
			continue
		}
		states = append(states, s.To)
		events = append(events, s.Event)
	}
	const bw, bh, gap = 96, 30, 44
	width := len(states)*(bw+gap) - gap + 20
	svg := fmt.Sprintf(`<svg width="%d" height="%d" role="img" aria-label="path of run %d">`, width, bh+40, tl.Run.ID)
	for i, s := range states {
		x := 10 + i*(bw+gap)
		fill := "#cde4ff"
		switch {
		case i == len(states)-1 && tl.Run.Outcome == "committed":
			fill = "#c8f0c8"
		case i == len(states)-1 && tl.Run.Outcome == "rolled_back":
			fill = "#ffe0b0"
		case i == len(states)-1:
			fill = "#ffc8c8"
		}
		svg += fmt.Sprintf(`<rect x="%d" y="20" width="%d" height="%d" rx="6" fill="%s" stroke="#345"/>`, x, bw, bh, fill)
		svg += fmt.Sprintf(`<text x="%d" y="%d" text-anchor="middle" font-size="12">%s</text>`, x+bw/2, 20+bh/2+4, template.HTMLEscapeString(s))
		if i < len(events) {
			x1, x2 := x+bw, x+bw+gap
			svg += fmt.Sprintf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#345"/>`, x1, 20+bh/2, x2-4, 20+bh/2)
			svg += fmt.Sprintf(`<polygon points="%d,%d %d,%d %d,%d" fill="#345"/>`, x2, 20+bh/2, x2-6, 20+bh/2-4, x2-6, 20+bh/2+4)
			svg += fmt.Sprintf(`<text x="%d" y="14" text-anchor="middle" font-size="10">%s</text>`, (x1+x2)/2, template.HTMLEscapeString(events[i]))
		}
	}
	return template.HTML(svg + `</svg>`)
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"dur": func(d time.Duration) string { return d.Round(time.Microsecond).String() },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kvrflow journal report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#123}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #bcd;padding:.25em .6em;text-align:left;font-size:13px}
th{background:#eef3f8}
.committed{color:#176317}.rolled_back{color:#8a5300}.inflight{color:#a00;font-weight:bold}
.summary{display:flex;flex-wrap:wrap;gap:2em}
code{font-size:12px}
</style></head><body>
<h1>kvrflow journal report</h1>
{{with .Summary}}<p>Journal <code>{{$.Journal}}</code>, generated {{$.Generated}}: {{.Runs}} runs{{if .Runs}}, started from {{ts .First}} to {{ts .Last}}{{end}}; {{len $.Runs}} shown in detail below ({{$.Selection}}).</p>
<h2>All {{.Runs}} runs</h2>
<div class="summary" id="summary">
<table id="by-outcome"><tr><th>outcome</th><th>runs</th></tr>
{{range .ByOutcome}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>
{{end}}</table>
<table id="by-kind"><tr><th>kind</th><th>runs</th></tr>
{{range .ByKind}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>
{{end}}</table>
<table id="by-target"><tr><th>target</th><th>runs</th></tr>
{{range .ByTarget}}<tr><td><code>{{.Name}}</code></td><td>{{.N}}</td></tr>
{{end}}{{if .OtherTargets.N}}<tr><td>{{.OtherTargets.Name}}</td><td>{{.OtherTargets.N}}</td></tr>
{{end}}</table>
<table id="durations"><tr><th>duration of the {{.Ended}} ended runs</th><th></th></tr>
{{range .Percentiles}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
<table id="failures"><tr><th>failed in step</th><th>runs</th></tr>
{{range .Failures}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>
{{else}}<tr><td>none</td><td>0</td></tr>
{{end}}</table>
</div>{{end}}
<h2>Runs shown in detail: {{.Selection}}</h2>
<table id="runs"><tr><th>run</th><th>kind</th><th>source</th><th>target</th><th>start</th><th>duration</th><th>state</th><th>outcome</th></tr>
{{range .Runs}}<tr><td><a href="#run-{{.Run.ID}}">{{.Run.ID}}</a></td><td>{{.Run.Kind}}</td><td><code>{{.Run.Source}}</code></td><td><code>{{.Run.Target}}</code></td><td>{{ts .Run.Start}}</td><td>{{.Duration}}</td><td>{{.Run.State}}</td>
<td class="{{if .Run.Outcome}}{{.Run.Outcome}}{{else}}inflight{{end}}">{{if .Run.Outcome}}{{.Run.Outcome}}{{else}}in flight{{end}}</td></tr>
{{end}}</table>
{{range .Runs}}<section id="run-{{.Run.ID}}">
<h2>Run {{.Run.ID}}: {{if .Run.Outcome}}{{.Run.Outcome}}{{else}}in flight in {{.Run.State}}{{end}}</h2>
<p><code>{{.Run.Source}}</code> → <code>{{.Run.Target}}</code>, {{.Run.Kind}}, mode {{.Run.Mode}}, engine {{.Run.Engine}}{{if .Run.Error}}; error: {{.Run.Error}}{{end}}</p>
{{.Path}}
<table><tr><th>seq</th><th>time</th><th>+</th><th>from</th><th>event</th><th>to</th><th>files</th><th>bytes</th><th>error</th><th>if it had crashed here</th><th>hash</th></tr>
<tr><td>0</td><td>{{ts .Run.Start}}</td><td></td><td></td><td>begin</td><td>{{.Start}}</td><td></td><td></td><td></td><td>{{.IfCrashedAtStart}}</td><td><code>{{short .Run.FirstHash}}</code></td></tr>
{{range .Steps}}<tr><td>{{.Seq}}</td><td>{{ts .Time}}</td><td>{{dur .Duration}}</td><td>{{.From}}</td><td>{{.Event}}</td><td>{{.To}}</td><td>{{if .Files}}{{.Files}}{{end}}</td><td>{{if .Bytes}}{{.Bytes}}{{end}}</td><td>{{.Error}}</td><td>{{.IfCrashed}}</td><td><code>{{short .Hash}}</code></td></tr>
{{end}}</table></section>
{{end}}</body></html>
`))
