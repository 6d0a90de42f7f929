package logview

import (
	"bytes"
	"fmt"
	"io"
)

// MaxPageBytes bounds Query.Limit: no page reads more than this.
const MaxPageBytes = 1 << 20

// Query asks for a page of a log. With Before set the page ends there
// and reaches back; otherwise it starts at From and reaches forward.
// Either way it holds at most Limit bytes and at most Lines lines.
type Query struct {
	From   int64
	Before int64 // 0: a forward page from From; > 0: a page ending at Before
	Tail   bool  // a page ending at the end of the log (Before and From ignored)
	Limit  int64 // bytes, 1..MaxPageBytes (default MaxPageBytes)
	Lines  int   // 0: no line limit
}

// Page is the part [From, To) of a log. It starts at the beginning of a
// line and ends after a newline, except that a line longer than the
// page's byte limit is served in pieces, and the last line of a final
// log needs no newline. Size is the log's size when it was read; Final
// says the log will not grow.
type Page struct {
	From  int64
	To    int64
	Size  int64
	Final bool
	Data  []byte
}

// ReadPage reads the page q asks for from a log of size bytes. final
// says the log will not grow: its last line counts as complete even
// without a newline; in a growing log a trailing partial line is left
// for a later page.
func ReadPage(r io.ReaderAt, size int64, final bool, q Query) (Page, error) {
	if q.Limit <= 0 || q.Limit > MaxPageBytes {
		q.Limit = MaxPageBytes
	}
	p := Page{Size: size, Final: final}
	var start, end int64
	switch {
	case q.Tail:
		start, end = max(0, size-q.Limit), size
	case q.Before > 0:
		end = min(q.Before, size)
		start = max(0, end-q.Limit)
	default:
		start = min(max(q.From, 0), size)
		end = min(start+q.Limit, size)
	}
	buf := make([]byte, end-start)
	if _, err := r.ReadAt(buf, start); err != nil && err != io.EOF {
		return p, fmt.Errorf("read log bytes %d-%d: %w", start, end, err)
	}
	lineStart := start == 0
	if start > 0 {
		var prev [1]byte
		if _, err := r.ReadAt(prev[:], start-1); err != nil {
			return p, fmt.Errorf("read log byte %d: %w", start-1, err)
		}
		lineStart = prev[0] == '\n'
	}
	forward := !q.Tail && q.Before <= 0
	lo, hi := Cut(buf, lineStart, end == size, final, forward, q.Lines)
	p.From, p.To, p.Data = start+int64(lo), start+int64(hi), buf[lo:hi]
	return p, nil
}

// Cut chooses the lines of buf to serve: buf[lo:hi]. The edge a page
// continues from (the start of a forward page, the end of a backward
// one, both offsets of earlier pages) is kept; the other edge is cut at
// a line boundary. atStart says buf begins at the start of a line, atEnd
// that it ends at the log's current end, final that the log will not
// grow: a growing log's unfinished last line waits for a later page,
// also at the end of a backward page. A buffer with no line boundary to
// cut at (the middle of a line longer than a page) is served whole, as
// one piece, so paging always moves on. A page going forward keeps its
// first maxLines lines, else its last ones (0: no limit).
func Cut(buf []byte, atStart, atEnd, final, forward bool, maxLines int) (lo, hi int) {
	lo, hi = 0, len(buf)
	if !forward && !atStart {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i+1 < len(buf) {
			lo = i + 1
		}
	}
	if (forward || atEnd) && !(atEnd && final) {
		switch j := bytes.LastIndexByte(buf[lo:], '\n'); {
		case j >= 0:
			hi = lo + j + 1
		case atEnd:
			hi = lo
		}
	}
	if maxLines <= 0 || lo >= hi {
		return lo, hi
	}
	if forward {
		n := 0
		for i := lo; i < hi; i++ {
			if buf[i] == '\n' {
				if n++; n == maxLines {
					return lo, i + 1
				}
			}
		}
		return lo, hi
	}
	n := 0
	for i := hi - 2; i >= lo; i-- {
		if buf[i] == '\n' {
			if n++; n == maxLines {
				return i + 1, hi
			}
		}
	}
	return lo, hi
}
