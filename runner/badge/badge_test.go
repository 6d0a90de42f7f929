package badge

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

type svgDoc struct {
	XMLName   xml.Name `xml:"svg"`
	Width     string   `xml:"width,attr"`
	AriaLabel string   `xml:"aria-label,attr"`
	Title     string   `xml:"title"`
	Texts     []string `xml:"g>text"`
	Rects     []struct {
		Fill string `xml:"fill,attr"`
	} `xml:"g>rect"`
}

func parse(t *testing.T, svg []byte) svgDoc {
	t.Helper()
	var d svgDoc
	dec := xml.NewDecoder(bytes.NewReader(svg))
	dec.Strict = true
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("parse SVG: %v\n%s", err, svg)
	}
	return d
}

func TestRenderStatuses(t *testing.T) {
	tests := []struct {
		status, wantText, wantColor string
	}{
		{"passing", "passing", "#4c1"},
		{"success", "passing", "#4c1"},
		{"failing", "failing", "#e05d44"},
		{"failure", "failing", "#e05d44"},
		{"running", "running", "#dfb317"},
		{"pending", "pending", "#007ec6"},
		{"canceled", "canceled", "#7a7a7a"},
		{"CANCELLED", "canceled", "#7a7a7a"},
		{"error", "error", "#fe7d37"},
		{"unknown", "unknown", "#9f9f9f"},
		{"<script>", "unknown", "#9f9f9f"},
		{"", "unknown", "#9f9f9f"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			d := parse(t, Render("runnel", tt.status))
			want := "runnel: " + tt.wantText
			if d.Title != want {
				t.Errorf("title: got %q, want %q", d.Title, want)
			}
			if d.AriaLabel != want {
				t.Errorf("aria-label: got %q, want %q", d.AriaLabel, want)
			}
			if len(d.Rects) < 2 || d.Rects[1].Fill != tt.wantColor {
				t.Errorf("status rect: got %+v, want fill %s", d.Rects, tt.wantColor)
			}
			if len(d.Texts) != 4 || d.Texts[0] != "runnel" || d.Texts[3] != tt.wantText {
				t.Errorf("texts: got %q, want runnel and %q", d.Texts, tt.wantText)
			}
		})
	}
}

func TestRenderEscapesLabel(t *testing.T) {
	label := `a<b&c"d'>`
	svg := Render(label, "passing")
	if bytes.Contains(svg, []byte(label)) {
		t.Fatalf("raw label found in SVG: %s", svg)
	}
	d := parse(t, svg)
	if d.Texts[0] != label {
		t.Errorf("label text: got %q, want %q", d.Texts[0], label)
	}
	if want := label + ": passing"; d.Title != want || d.AriaLabel != want {
		t.Errorf("title %q, aria-label %q: want %q", d.Title, d.AriaLabel, want)
	}
}

func TestWidthGrowsWithText(t *testing.T) {
	prev := 0
	for _, label := range []string{"a", "ab", "build", "build-and-test", "build-and-test-everything-WWW"} {
		d := parse(t, Render(label, "passing"))
		w, err := strconv.Atoi(d.Width)
		if err != nil {
			t.Fatalf("width %q: %v", d.Width, err)
		}
		if w <= prev {
			t.Errorf("label %q: got width %d, want > %d", label, w, prev)
		}
		prev = w
	}
	if a, b := TextWidth("iiii"), TextWidth("WWWW"); a >= b {
		t.Errorf("TextWidth(iiii)=%d, TextWidth(WWWW)=%d: want narrow < wide", a, b)
	}
	if got := TextWidth("passing"); got < 40 || got > 52 {
		t.Errorf("TextWidth(passing) = %d, want about 46 (shields)", got)
	}
}

func TestServeETag(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Serve(w, r, r.URL.Query().Get("label"), r.URL.Query().Get("status"))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(url, inm string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := get(srv.URL+"?label=build&status=passing", "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":  "image/svg+xml; charset=utf-8",
		"Cache-Control": "no-cache, max-age=0",
		"ETag":          ETag(body),
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	tag := resp.Header.Get("ETag")

	tests := []struct {
		name, url, inm string
		want           int
	}{
		{"same tag", "?label=build&status=passing", tag, 304},
		{"weak same tag in list", "?label=build&status=passing", `"x", W/` + tag, 304},
		{"star", "?label=build&status=passing", "*", 304},
		{"other tag", "?label=build&status=passing", `"deadbeef"`, 200},
		{"status changed", "?label=build&status=failing", tag, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(srv.URL+tt.url, tt.inm)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 304 && len(b) != 0 {
				t.Errorf("304 with body of %d bytes", len(b))
			}
			if tt.want == 200 && !strings.HasPrefix(string(b), "<svg") {
				t.Errorf("body: got %.40q, want an SVG", b)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}
