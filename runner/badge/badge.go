package badge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Statuses a badge can show. Render maps common synonyms onto these and
// shows anything else as Unknown.
const (
	Passing  = "passing"
	Failing  = "failing"
	Running  = "running"
	Pending  = "pending"
	Canceled = "canceled"
	Error    = "error"
	Unknown  = "unknown"
)

// Colours follow the shields.io palette.
var colors = map[string]string{
	Passing:  "#4c1",    // brightgreen
	Failing:  "#e05d44", // red
	Running:  "#dfb317", // yellow
	Pending:  "#007ec6", // blue
	Canceled: "#7a7a7a", // grey, darker than lightgrey but distinct from the label
	Error:    "#fe7d37", // orange
	Unknown:  "#9f9f9f", // lightgrey
}

var synonyms = map[string]string{
	"success":   Passing,
	"succeeded": Passing,
	"pass":      Passing,
	"ok":        Passing,
	"failure":   Failing,
	"failed":    Failing,
	"fail":      Failing,
	"started":   Running,
	"queued":    Pending,
	"cancelled": Canceled,
	"killed":    Canceled,
	"errored":   Error,
}

// Normalize maps a run or stage status onto one of the badge statuses.
// Unrecognised values become Unknown, so the status text on a badge never
// carries arbitrary input.
func Normalize(status string) string {
	s := strings.ToLower(strings.TrimSpace(status))
	if _, ok := colors[s]; ok {
		return s
	}
	if c, ok := synonyms[s]; ok {
		return c
	}
	return Unknown
}

// Color returns the fill colour used for a status (after Normalize).
func Color(status string) string { return colors[Normalize(status)] }

const (
	height   = 20
	padding  = 5 // horizontal padding on each side of a text
	maxLabel = 64
)

// Render returns the SVG of a flat badge. The label is XML-escaped and
// truncated to 64 runes; an empty label becomes "runnel". The status is
// normalised with Normalize.
func Render(label, status string) []byte {
	label = strings.TrimSpace(label)
	if label == "" {
		label = "runnel"
	}
	if utf8.RuneCountInString(label) > maxLabel {
		label = string([]rune(label)[:maxLabel-1]) + "…"
	}
	status = Normalize(status)
	color := colors[status]

	lt := TextWidth(label)
	st := TextWidth(status)
	lw := lt + 2*padding
	sw := st + 2*padding
	w := lw + sw

	title := esc(label + ": " + status)
	l := esc(label)
	s := esc(status)

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">`, w, height, title)
	fmt.Fprintf(&b, `<title>%s</title>`, title)
	b.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	fmt.Fprintf(&b, `<clipPath id="r"><rect width="%d" height="%d" rx="3" fill="#fff"/></clipPath>`, w, height)
	fmt.Fprintf(&b, `<g clip-path="url(#r)"><rect width="%d" height="%d" fill="#555"/><rect x="%d" width="%d" height="%d" fill="%s"/><rect width="%d" height="%d" fill="url(#s)"/></g>`,
		lw, height, lw, sw, height, color, w, height)
	b.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">`)
	// Coordinates are scaled by 10 (transform="scale(.1)") as shields does,
	// which keeps sub-pixel placement without decimals.
	text := func(x, tw int, t string) {
		fmt.Fprintf(&b, `<text aria-hidden="true" x="%d" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="%d">%s</text>`, x, tw*10, t)
		fmt.Fprintf(&b, `<text x="%d" y="140" transform="scale(.1)" fill="#fff" textLength="%d">%s</text>`, x, tw*10, t)
	}
	text(lw*10/2, lt, l)
	text(lw*10+sw*10/2, st, s)
	b.WriteString(`</g></svg>`)
	return b.Bytes()
}

// ETag returns a strong entity tag for an SVG: a quoted prefix of its
// SHA-256.
func ETag(svg []byte) string {
	sum := sha256.Sum256(svg)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func esc(s string) string {
	var b strings.Builder
	// EscapeText escapes <, >, &, ' and "; it cannot fail on a Builder.
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// TextWidth estimates the rendered width in pixels of s in Verdana 11px,
// rounded up.
func TextWidth(s string) int {
	var w float64
	for _, r := range s {
		w += runeWidth(r)
	}
	return int(math.Ceil(w))
}

func runeWidth(r rune) float64 {
	if r >= 0x20 && r < 0x7f {
		return verdana11[r-0x20]
	}
	switch {
	case r < 0x20:
		return 0
	case r >= 0x1100 && (r <= 0x115f || (r >= 0x2e80 && r <= 0xa4cf) || (r >= 0xac00 && r <= 0xd7a3) || (r >= 0xf900 && r <= 0xfaff) || (r >= 0xff00 && r <= 0xff60) || r >= 0x1f300):
		return 11 // wide (CJK, emoji): about one em
	default:
		return 7 // Latin-1 and other narrow scripts: an average glyph
	}
}

// verdana11 holds advance widths in pixels of Verdana at 11px for the
// printable ASCII characters 0x20..0x7e (font units / 2048 * 11).
var verdana11 = [95]float64{
	3.87, 4.33, 5.05, 9.00, 7.00, 11.84, 7.99, 2.95, // space ! " # $ % & '
	4.99, 4.99, 7.00, 9.00, 4.00, 4.99, 4.00, 4.99, // ( ) * + , - . /
	7.00, 7.00, 7.00, 7.00, 7.00, 7.00, 7.00, 7.00, // 0-7
	7.00, 7.00, 4.99, 4.99, 9.00, 9.00, 9.00, 6.00, // 8 9 : ; < = > ?
	11.00, 7.52, 7.54, 7.68, 8.48, 6.96, 6.32, 8.53, // @ A-G
	8.27, 4.61, 5.00, 7.62, 6.12, 9.27, 8.23, 8.66, // H-O
	6.63, 8.66, 7.65, 7.52, 6.78, 8.05, 7.52, 10.88, // P-W
	7.54, 6.77, 7.54, 4.99, 4.99, 4.99, 9.00, 7.00, // X Y Z [ \ ] ^ _
	7.00, 6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, // ` a-g
	6.96, 3.02, 3.79, 6.51, 3.02, 10.66, 6.96, 6.68, // h-o
	6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 8.98, // p-w
	6.51, 6.51, 5.78, 6.98, 4.99, 6.98, 9.00, // x y z { | } ~
}
