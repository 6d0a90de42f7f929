package badge

import (
	"bytes"
	"encoding/xml"
	"testing"
)

// FuzzRender checks that any label (it comes from repository and stage
// names) renders to well-formed XML whose title starts with it.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"runnel", `a<b&c"d'>`, "\x00\x01\n\t", "\xff\xfe", "ビルド", "]]>", "<!--", "&amp;"} {
		f.Add(s, "passing")
	}
	f.Fuzz(func(t *testing.T, label, status string) {
		svg := Render(label, status)
		dec := xml.NewDecoder(bytes.NewReader(svg))
		dec.Strict = true
		var d svgDoc
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("Render(%q, %q) is not valid XML: %v\n%s", label, status, err, svg)
		}
		if want := Normalize(status); len(d.Texts) != 4 || d.Texts[3] != want {
			t.Fatalf("status text: got %q, want %q", d.Texts, want)
		}
	})
}
