package logview

import (
	"strconv"
	"strings"
)

// Segment is a run of log text with one style. Class is built only from
// fixed names (fg1, bg4, b, ...), never from log content; Text is
// rendered escaped (html/template on pages, textContent in the browser).
type Segment struct {
	Text  string `json:"t"`
	Class string `json:"c,omitempty"`
}

// style is the SGR state: colours 0-15 or -1 for the default.
type style struct {
	fg, bg int
	bold   bool
	faint  bool
	italic bool
	under  bool
}

var plain = style{fg: -1, bg: -1}

func (s style) class() string {
	var parts []string
	if s.fg >= 0 {
		parts = append(parts, "fg"+strconv.Itoa(s.fg))
	}
	if s.bg >= 0 {
		parts = append(parts, "bg"+strconv.Itoa(s.bg))
	}
	if s.bold {
		parts = append(parts, "b")
	}
	if s.faint {
		parts = append(parts, "f")
	}
	if s.italic {
		parts = append(parts, "i")
	}
	if s.under {
		parts = append(parts, "u")
	}
	return strings.Join(parts, " ")
}

// ANSI turns log lines with ANSI escape sequences into styled segments.
// SGR colours (the 16 basic ones; 256-colour values below 16 map to them)
// and bold/faint/italic/underline are kept; every other escape or control
// sequence is dropped. The style carries over from line to line as in a
// terminal. A carriage return inside a line starts it over, as a
// progress bar would on a terminal.
type ANSI struct{ st style }

// NewANSI returns a converter starting in the default style.
func NewANSI() *ANSI { return &ANSI{st: plain} }

// Line converts one line (without its newline).
func (a *ANSI) Line(s string) []Segment {
	s = strings.ToValidUTF8(strings.TrimSuffix(s, "\r"), "\uFFFD")
	var segs []Segment
	var text strings.Builder
	flush := func() {
		if text.Len() == 0 {
			return
		}
		c := a.st.class()
		if n := len(segs); n > 0 && segs[n-1].Class == c {
			segs[n-1].Text += text.String()
		} else {
			segs = append(segs, Segment{Text: text.String(), Class: c})
		}
		text.Reset()
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			flush()
			i = a.escape(s, i)
		case c == '\r':
			text.Reset()
			segs = segs[:0]
			i++
		case c == '\t':
			text.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++ // other C0 controls (bell, backspace, ...) are dropped
		default:
			text.WriteByte(c)
			i++
		}
	}
	flush()
	return segs
}

// escape consumes the escape sequence at s[i] (s[i] == ESC) and returns
// the index after it.
func (a *ANSI) escape(s string, i int) int {
	if i+1 >= len(s) {
		return len(s)
	}
	switch s[i+1] {
	case '[': // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e
		j := i + 2
		for j < len(s) && s[j] >= 0x30 && s[j] <= 0x3f {
			j++
		}
		params := s[i+2 : j]
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
			j++
		}
		if j >= len(s) {
			return len(s)
		}
		if s[j] == 'm' {
			a.sgr(params)
		}
		return j + 1
	case ']', 'P', '_', '^': // OSC, DCS, APC, PM: up to BEL or ST (ESC \)
		for j := i + 2; j < len(s); j++ {
			if s[j] == 0x07 {
				return j + 1
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 2
			}
		}
		return len(s)
	default: // a two-byte escape
		return i + 2
	}
}

func (a *ANSI) sgr(params string) {
	if params == "" {
		a.st = plain
		return
	}
	ps := strings.FieldsFunc(params, func(r rune) bool { return r == ';' || r == ':' })
	for k := 0; k < len(ps); k++ {
		n, err := strconv.Atoi(ps[k])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			a.st = plain
		case n == 1:
			a.st.bold = true
		case n == 2:
			a.st.faint = true
		case n == 3:
			a.st.italic = true
		case n == 4:
			a.st.under = true
		case n == 22:
			a.st.bold, a.st.faint = false, false
		case n == 23:
			a.st.italic = false
		case n == 24:
			a.st.under = false
		case n >= 30 && n <= 37:
			a.st.fg = n - 30
		case n == 39:
			a.st.fg = -1
		case n >= 40 && n <= 47:
			a.st.bg = n - 40
		case n == 49:
			a.st.bg = -1
		case n >= 90 && n <= 97:
			a.st.fg = n - 90 + 8
		case n >= 100 && n <= 107:
			a.st.bg = n - 100 + 8
		case n == 38 || n == 48:
			c, used := extended(ps[k+1:])
			k += used
			if n == 38 {
				a.st.fg = c
			} else {
				a.st.bg = c
			}
		}
	}
}

// extended parses the rest of a 38/48 colour ("5;n" or "2;r;g;b") and
// returns a basic colour (or -1) and how many parameters it used.
func extended(ps []string) (int, int) {
	if len(ps) == 0 {
		return -1, 0
	}
	switch ps[0] {
	case "5":
		if len(ps) < 2 {
			return -1, len(ps)
		}
		n, err := strconv.Atoi(ps[1])
		if err != nil || n < 0 || n > 15 {
			return -1, 2
		}
		return n, 2
	case "2":
		return -1, min(4, len(ps))
	}
	return -1, 1
}
