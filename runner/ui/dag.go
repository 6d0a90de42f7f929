package ui

import (
	"slices"
	"strconv"

	"github.com/runnel-ci/runnel/runner/store"
)

// The stage graph on the run page is an SVG drawn on the server: one box
// per stage name (the variants of a matrix stage are rows of one box),
// columns by depth in the needs DAG, an edge per need between boxes.
// Colours come from CSS classes (st-<status>), so no inline style is
// needed under the UI's CSP.

// Sizes of the drawing, in SVG user units (pixels at 100%).
const (
	dagNodeW   = 200 // box width
	dagHeadH   = 30  // a box's title row
	dagRowH    = 22  // each matrix variant's row
	dagColGap  = 56  // between columns (edges run here)
	dagRowGap  = 18  // between boxes of a column
	dagPad     = 8   // around the drawing
	dagNameMax = 24  // runes of a name shown before "…"
)

// dagGraph is the laid-out graph the template draws.
type dagGraph struct {
	Width, Height int
	Nodes         []*dagNode
	Edges         []dagEdge
}

// dagNode is one box: a stage, or every variant of a matrix stage.
type dagNode struct {
	Name     string // stage name (the box title)
	Label    string // Name cut to dagNameMax
	Status   store.Status
	Anchor   string // the stage article it links to
	Col      int
	X, Y     int
	W, H     int
	TextX    int // title
	TextY    int
	StatusX  int          // status text, right-aligned
	Variants []dagVariant // matrix variants; nil for a plain stage
	plan     int          // smallest plan position of its stages
	needs    []string     // names of the boxes it needs
}

// dagVariant is one matrix variant in a box.
type dagVariant struct {
	Key    string
	Label  string // the matrix values, e.g. "go=1.22"
	Status store.Status
	// DotX, DotY centre its status dot; TextX, TextY start its text.
	DotX, DotY   int
	TextX, TextY int
}

// dagEdge is a need drawn from the right of From to the left of To, as
// an SVG cubic path.
type dagEdge struct {
	From, To string
	Path     string
}

// layoutDAG lays out stages (any order) as a graph. Needs of unknown
// stages are ignored; a box's column is one more than the deepest box it
// needs, so a need always points right.
func layoutDAG(stages []*store.Stage) *dagGraph {
	if len(stages) == 0 {
		return nil
	}
	nodes, order := dagBoxes(stages)
	cols := dagColumns(nodes, order)
	// Columns left to right: a box's place depends on the rows of the
	// boxes it needs, which sit in earlier columns.
	g := &dagGraph{}
	rowOf := map[string]float64{}
	for c := range cols {
		var col []*dagNode
		for _, n := range order {
			if n.Col == c {
				col = append(col, n)
			}
		}
		sortColumn(col, rowOf)
		g.place(col, c, rowOf)
	}
	g.Width = 2*dagPad + cols*dagNodeW + (cols-1)*dagColGap
	g.connect(nodes)
	return g
}

// dagBoxes makes one box per stage name, in plan order, with the names
// of the boxes it needs.
func dagBoxes(stages []*store.Stage) (map[string]*dagNode, []*dagNode) {
	nodes := map[string]*dagNode{}
	var order []*dagNode
	keyName := map[string]string{}
	for _, s := range stages {
		keyName[s.Key] = s.Name
	}
	for _, s := range slices.SortedFunc(slices.Values(stages), func(a, b *store.Stage) int { return a.Position - b.Position }) {
		n := nodes[s.Name]
		if n == nil {
			n = &dagNode{Name: s.Name, Label: cut(s.Name, dagNameMax), Anchor: "stage-" + s.Key, plan: s.Position}
			nodes[s.Name] = n
			order = append(order, n)
		}
		if s.Key != s.Name {
			n.Variants = append(n.Variants, dagVariant{Key: s.Key, Label: cut(variantLabel(s.Key, s.Name), dagNameMax+4), Status: s.Status})
		}
		n.Status = worse(n.Status, s.Status)
		for _, k := range s.Needs {
			if name, ok := keyName[k]; ok && name != s.Name && !slices.Contains(n.needs, name) {
				n.needs = append(n.needs, name)
			}
		}
	}
	return nodes, order
}

// dagColumns sets each box's column by the longest path to it and
// returns the number of columns. Stages are few, so it repeats until
// stable (bounded by the number of boxes, which also stops a cycle).
func dagColumns(nodes map[string]*dagNode, order []*dagNode) int {
	for range order {
		changed := false
		for _, n := range order {
			for _, m := range n.needs {
				if c := nodes[m].Col + 1; c > n.Col {
					n.Col, changed = c, true
				}
			}
		}
		if !changed {
			break
		}
	}
	cols := 0
	for _, n := range order {
		cols = max(cols, n.Col+1)
	}
	return cols
}

// sortColumn puts the boxes of a column in the order of the mean row of
// what they need (fewer crossings), ties by plan position.
func sortColumn(col []*dagNode, rowOf map[string]float64) {
	mean := func(n *dagNode) float64 {
		if len(n.needs) == 0 {
			return -1
		}
		var sum float64
		for _, m := range n.needs {
			sum += rowOf[m]
		}
		return sum / float64(len(n.needs))
	}
	slices.SortStableFunc(col, func(a, b *dagNode) int {
		ma, mb := mean(a), mean(b)
		switch {
		case ma < mb:
			return -1
		case ma > mb:
			return 1
		}
		return a.plan - b.plan
	})
}

// place gives the sorted boxes of column c their coordinates, top to
// bottom, records their rows and adds them to g.
func (g *dagGraph) place(col []*dagNode, c int, rowOf map[string]float64) {
	y := dagPad
	for i, n := range col {
		rowOf[n.Name] = float64(i)
		n.X, n.Y, n.W = dagPad+c*(dagNodeW+dagColGap), y, dagNodeW
		n.H = dagHeadH + len(n.Variants)*dagRowH
		if len(n.Variants) > 0 {
			n.H += 4
		}
		n.TextX, n.TextY, n.StatusX = n.X+16, n.Y+20, n.X+n.W-10
		for j := range n.Variants {
			v := &n.Variants[j]
			v.DotX, v.DotY = n.X+24, n.Y+dagHeadH+j*dagRowH+10
			v.TextX, v.TextY = n.X+36, v.DotY+4
		}
		y += n.H + dagRowGap
		g.Height = max(g.Height, y-dagRowGap+dagPad)
		g.Nodes = append(g.Nodes, n)
	}
}

// connect adds an edge per need between placed boxes.
func (g *dagGraph) connect(nodes map[string]*dagNode) {
	for _, n := range g.Nodes {
		for _, m := range n.needs {
			from := nodes[m]
			x1, y1 := from.X+from.W, from.Y+dagHeadH/2
			x2, y2 := n.X, n.Y+dagHeadH/2
			mid := (x1 + x2) / 2
			g.Edges = append(g.Edges, dagEdge{From: m, To: n.Name,
				Path: "M" + strconv.Itoa(x1) + " " + strconv.Itoa(y1) + " C" + strconv.Itoa(mid) + " " + strconv.Itoa(y1) + " " + strconv.Itoa(mid) + " " + strconv.Itoa(y2) + " " + strconv.Itoa(x2-4) + " " + strconv.Itoa(y2)})
		}
	}
}

// variantLabel is a matrix stage key without its name: "test[go=1.22]"
// gives "go=1.22".
func variantLabel(key, name string) string {
	if len(key) > len(name)+1 && key[:len(name)] == name && key[len(name)] == '[' && key[len(key)-1] == ']' {
		return key[len(name)+1 : len(key)-1]
	}
	return key
}

// cut shortens s to n runes, ending in "…" when cut.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// statusRank orders statuses for a box of several variants: the box shows
// the most telling of them (a failure over a success, a running variant
// over a pending one).
var statusRank = map[store.Status]int{
	store.StatusFailure: 9, store.StatusError: 8, store.StatusRunning: 7, store.StatusQueued: 6, store.StatusWaiting: 5,
	store.StatusPending: 4, store.StatusCanceled: 3, store.StatusSuccess: 2, store.StatusSkipped: 1,
}

func worse(a, b store.Status) store.Status {
	if statusRank[b] > statusRank[a] {
		return b
	}
	return a
}
