package ui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/store"
)

func stage(key, name string, pos int, status store.Status, needs ...string) *store.Stage {
	return &store.Stage{Key: key, Name: name, Position: pos, Status: status, Needs: needs}
}

// describe renders a graph as "name@col:row status [variants]" per box and
// "from>to" per edge, in a stable order.
func describe(g *dagGraph) string {
	var parts []string
	rows := map[int]int{}
	for _, n := range g.Nodes {
		s := fmt.Sprintf("%s@%d:%d %s", n.Name, n.Col, rows[n.Col], n.Status)
		rows[n.Col]++
		for _, v := range n.Variants {
			s += fmt.Sprintf(" [%s %s]", v.Label, v.Status)
		}
		parts = append(parts, s)
	}
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To)
	}
	slices.Sort(edges)
	return strings.Join(parts, "; ") + " | " + strings.Join(edges, " ")
}

func TestLayoutDAG(t *testing.T) {
	S, F, R, P := store.StatusSuccess, store.StatusFailure, store.StatusRunning, store.StatusPending
	tests := []struct {
		name   string
		stages []*store.Stage
		want   string
	}{
		{"one stage", []*store.Stage{stage("build", "build", 0, S)}, "build@0:0 success | "},
		{"chain", []*store.Stage{stage("a", "a", 0, S), stage("b", "b", 1, R, "a"), stage("c", "c", 2, P, "b")},
			"a@0:0 success; b@1:0 running; c@2:0 pending | a>b b>c"},
		{"diamond", []*store.Stage{stage("a", "a", 0, S), stage("b", "b", 1, S, "a"), stage("c", "c", 2, F, "a"),
			stage("d", "d", 3, P, "b", "c")},
			"a@0:0 success; b@1:0 success; c@1:1 failure; d@2:0 pending | a>b a>c b>d c>d"},
		{"matrix grouped, worst status shown", []*store.Stage{stage("build", "build", 0, S),
			stage("test[go=1.22]", "test", 1, S, "build"), stage("test[go=1.23]", "test", 2, F, "build"),
			stage("package", "package", 3, P, "test[go=1.22]", "test[go=1.23]")},
			"build@0:0 success; test@1:0 failure [go=1.22 success] [go=1.23 failure]; package@2:0 pending | build>test test>package"},
		{"longest path sets the column", []*store.Stage{stage("a", "a", 0, S), stage("b", "b", 1, S, "a"),
			stage("c", "c", 2, S, "a", "b")},
			"a@0:0 success; b@1:0 success; c@2:0 success | a>b a>c b>c"},
		{"plan order is not DAG order; unknown needs ignored", []*store.Stage{stage("z", "z", 1, P, "a", "gone"), stage("a", "a", 0, R)},
			"a@0:0 running; z@1:0 pending | a>z"},
		{"rows follow what they need", []*store.Stage{stage("a", "a", 0, S), stage("b", "b", 1, S),
			stage("x", "x", 2, P, "b"), stage("y", "y", 3, P, "a")},
			"a@0:0 success; b@0:1 success; y@1:0 pending; x@1:1 pending | a>y b>x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := layoutDAG(tt.stages)
			if got := describe(g); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			for _, n := range g.Nodes {
				if n.X+n.W > g.Width || n.Y+n.H > g.Height {
					t.Errorf("box %s (%d,%d %dx%d) outside %dx%d", n.Name, n.X, n.Y, n.W, n.H, g.Width, g.Height)
				}
			}
		})
	}
	if layoutDAG(nil) != nil {
		t.Error("no stages: want no graph")
	}
}

func TestVariantLabelAndCut(t *testing.T) {
	for _, tt := range []struct{ key, name, want string }{
		{"test[go=1.22]", "test", "go=1.22"},
		{"test[go=1.22,os=linux]", "test", "go=1.22,os=linux"},
		{"testx", "test", "testx"},
		{"t[", "t", "t["},
	} {
		if got := variantLabel(tt.key, tt.name); got != tt.want {
			t.Errorf("variantLabel(%q, %q) = %q, want %q", tt.key, tt.name, got, tt.want)
		}
	}
	if got := cut("ααααα", 3); got != "αα…" {
		t.Errorf("cut: got %q", got)
	}
}
