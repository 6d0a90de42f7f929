package logview

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestCut(t *testing.T) {
	tests := []struct {
		name                       string
		buf                        string
		atStart, atEnd, final, fwd bool
		lines                      int
		want                       string
	}{
		{"whole lines", "a\nb\n", true, false, false, true, 0, "a\nb\n"},
		{"forward: the start is kept", "xa\nb\n", false, false, false, true, 0, "xa\nb\n"},
		{"backward: partial first line dropped", "xa\nb\n", false, false, false, false, 0, "b\n"},
		{"backward: the end is kept", "a\nb", true, false, false, false, 0, "a\nb"},
		{"backward at the end of a growing log", "a\nb\nc", false, true, false, false, 0, "b\n"},
		{"partial last line dropped", "a\nb", true, false, false, true, 0, "a\n"},
		{"growing log: unfinished line waits", "a\nb", true, true, false, true, 0, "a\n"},
		{"final log: last line needs no newline", "a\nb", true, true, true, true, 0, "a\nb"},
		{"growing log: only an unfinished line", "abc", true, true, false, true, 0, ""},
		{"middle of a long line is one piece", "xyz", false, false, false, true, 0, "xyz"},
		{"backward: middle of a long line is one piece", "xyz", false, false, false, false, 0, "xyz"},
		{"end of a long line is one piece", "yz\n", false, false, false, false, 0, "yz\n"},
		{"forward keeps the first lines", "a\nb\nc\n", true, false, false, true, 2, "a\nb\n"},
		{"backward keeps the last lines", "a\nb\nc\n", true, false, false, false, 2, "b\nc\n"},
		{"backward line limit, unterminated last line", "a\nb\nc", true, true, true, false, 2, "b\nc"},
		{"line limit larger than the page", "a\nb\n", true, false, false, false, 5, "a\nb\n"},
		{"empty", "", true, true, false, true, 0, ""},
		{"empty lines count", "\n\n\n", true, false, false, false, 2, "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := Cut([]byte(tt.buf), tt.atStart, tt.atEnd, tt.final, tt.fwd, tt.lines)
			if got := tt.buf[lo:hi]; got != tt.want {
				t.Errorf("Cut(%q) = %q, want %q", tt.buf, got, tt.want)
			}
		})
	}
}

// numbered is a log of n lines "line 1" ... whose line i has i%7 extra
// characters, so lines differ in length.
func numbered(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("x", i%7))
	}
	return b.Bytes()
}

// TestPagingCoversTheLog pages through logs forward and backward with
// many page sizes: the pages join up exactly, each starts at a line
// start and ends after a newline, and none is empty before the end.
func TestPagingCoversTheLog(t *testing.T) {
	for _, log := range [][]byte{numbered(500), append(numbered(50), "no newline at the end"...), []byte(strings.Repeat("long", 300) + "\nshort\n")} {
		for _, limit := range []int64{1, 7, 64, 100, 1000, 1 << 20} {
			for _, lines := range []int{0, 1, 3} {
				name := fmt.Sprintf("size=%d/limit=%d/lines=%d", len(log), limit, lines)
				size := int64(len(log))
				r := bytes.NewReader(log)
				var fwd []byte
				for from := int64(0); from < size; {
					p, err := ReadPage(r, size, true, Query{From: from, Limit: limit, Lines: lines})
					if err != nil {
						t.Fatal(err)
					}
					if p.From != from || p.To <= p.From {
						t.Fatalf("%s: forward page from %d = [%d,%d)", name, from, p.From, p.To)
					}
					checkEdge(t, name, log, p, p.To, limit)
					fwd = append(fwd, p.Data...)
					from = p.To
				}
				if !bytes.Equal(fwd, log) {
					t.Fatalf("%s: forward pages do not add up to the log", name)
				}
				var back []byte
				q := Query{Tail: true, Limit: limit, Lines: lines}
				for {
					p, err := ReadPage(r, size, true, q)
					if err != nil {
						t.Fatal(err)
					}
					if p.To <= p.From {
						t.Fatalf("%s: backward page = [%d,%d)", name, p.From, p.To)
					}
					checkEdge(t, name, log, p, p.From, limit)
					back = append(append([]byte(nil), p.Data...), back...)
					if p.From == 0 {
						break
					}
					q = Query{Before: p.From, Limit: limit, Lines: lines}
				}
				if !bytes.Equal(back, log) {
					t.Fatalf("%s: backward pages do not add up to the log", name)
				}
			}
		}
	}
}

// checkEdge: the edge a page was cut at is a line boundary, unless the
// page is a piece of a line longer than the limit.
func checkEdge(t *testing.T, name string, log []byte, p Page, edge, limit int64) {
	t.Helper()
	if !bytes.Equal(p.Data, log[p.From:p.To]) {
		t.Fatalf("%s: page data is not log[%d:%d]", name, p.From, p.To)
	}
	piece := p.To-p.From == limit && !bytes.Contains(p.Data[:len(p.Data)-1], []byte("\n"))
	if edge > 0 && edge < int64(len(log)) && log[edge-1] != '\n' && !piece {
		t.Errorf("%s: page [%d,%d) is cut mid-line at %d", name, p.From, p.To, edge)
	}
}

// TestTailOfGrowingLog: the tail of a log still being written ends at
// its last newline; once final, the last line counts.
func TestTailOfGrowingLog(t *testing.T) {
	log := []byte("one\ntwo\nthr")
	for _, final := range []bool{false, true} {
		p, err := ReadPage(bytes.NewReader(log), int64(len(log)), final, Query{Tail: true, Limit: 8})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "two\n", true: "two\nthr"}[final]
		if string(p.Data) != want || p.Size != int64(len(log)) || p.Final != final {
			t.Errorf("final=%v: got %q size %d final %v, want %q", final, p.Data, p.Size, p.Final, want)
		}
	}
}

// FuzzCut: whatever the bytes, a cut lies inside the buffer, and an
// edge that is not a line boundary is only ever a buffer edge.
func FuzzCut(f *testing.F) {
	f.Add([]byte("a\nb\nc"), false, false, false, true, 2)
	f.Add([]byte("\n\n"), true, true, false, false, 1)
	f.Add([]byte("xyz"), false, true, true, true, 0)
	f.Fuzz(func(t *testing.T, buf []byte, atStart, atEnd, final, fwd bool, lines int) {
		lo, hi := Cut(buf, atStart, atEnd, final, fwd, lines%100)
		if lo < 0 || hi > len(buf) || lo > hi {
			t.Fatalf("Cut(%q) = %d,%d outside the buffer", buf, lo, hi)
		}
		if !fwd && lo > 0 && buf[lo-1] != '\n' {
			t.Fatalf("Cut(%q) starts at %d, not after a newline", buf, lo)
		}
		if (fwd || atEnd) && hi < len(buf) && hi > lo && buf[hi-1] != '\n' {
			t.Fatalf("Cut(%q) ends at %d, not after a newline", buf, hi)
		}
		if lines > 0 && lines < 100 && bytes.Count(buf[lo:hi], []byte("\n")) > lines {
			t.Fatalf("Cut(%q, lines=%d) kept %q", buf, lines, buf[lo:hi])
		}
	})
}
