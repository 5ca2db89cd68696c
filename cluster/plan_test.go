package cluster

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePlan_RefusesBadPlans(t *testing.T) {
	good := `{"name":"r1","nodes":[{"id":"n1","db":"/d","from":"/b","mode":"auto"},{"id":"n2","from":"s3://b/p"}]}`
	if p, err := ParsePlan(strings.NewReader(good)); err != nil || len(p.Nodes) != 2 {
		t.Fatalf("good plan: %v, %v", p, err)
	}
	for why, doc := range map[string]string{
		"not JSON":       `{`,
		"unknown field":  `{"name":"r","nodes":[{"id":"n","from":"/b"}],"extra":1}`,
		"no name":        `{"nodes":[{"id":"n","from":"/b"}]}`,
		"name with /":    `{"name":"a/b","nodes":[{"id":"n","from":"/b"}]}`,
		"no nodes":       `{"name":"r","nodes":[]}`,
		"node twice":     `{"name":"r","nodes":[{"id":"n","from":"/b"},{"id":"n","from":"/c"}]}`,
		"no source":      `{"name":"r","nodes":[{"id":"n"}]}`,
		"bad mode":       `{"name":"r","nodes":[{"id":"n","from":"/b","mode":"move"}]}`,
		"two documents":  `{"name":"r","nodes":[{"id":"n","from":"/b"}]} {}`,
		"id with a path": `{"name":"r","nodes":[{"id":"../n","from":"/b"}]}`,
	} {
		_, err := ParsePlan(strings.NewReader(doc))
		if !errors.Is(err, ErrBadPlan) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line matching ErrBadPlan", why, err)
		}
	}
}

// TestAgent_RefusesForeignDBAndSources: the plan's db must be the
// agent's own (after resolving), its source under an allowed prefix.
func TestAgent_RefusesForeignDBAndSources(t *testing.T) {
	dir := t.TempDir()
	a := &agent{o: AgentOptions{DB: filepath.Join(dir, "db"), AllowFrom: []string{filepath.Join(dir, "backups"), "s3://bucket/kv/"}}}
	for _, tc := range []struct {
		e      PlanNode
		refuse bool
	}{
		{PlanNode{From: filepath.Join(dir, "backups", "b1")}, false},
		{PlanNode{DB: filepath.Join(dir, ".", "db"), From: filepath.Join(dir, "backups")}, false},
		{PlanNode{DB: filepath.Join(dir, "other"), From: filepath.Join(dir, "backups", "b1")}, true},
		{PlanNode{From: filepath.Join(dir, "backups-evil")}, true},
		{PlanNode{From: filepath.Join(dir, "backups", "..", "etc")}, true},
		{PlanNode{From: "s3://bucket/kv/b1"}, false},
		{PlanNode{From: "s3://bucket/kvx"}, true},
		{PlanNode{From: "s3://bucket/kv/../secret"}, true},
	} {
		if got := a.refuse(tc.e) != ""; got != tc.refuse {
			t.Errorf("%+v: refused %v (%q), want %v", tc.e, got, a.refuse(tc.e), tc.refuse)
		}
	}
}
