package logview

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// chunks is a reader that returns one chunk per Read, as a followed log
// does when its writer appends.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

func readAll(t *testing.T, body []byte) []Event {
	t.Helper()
	var evs []Event
	if err := ReadEvents(bytes.NewReader(body), func(e Event) error {
		evs = append(evs, e)
		return nil
	}); err != nil {
		t.Fatalf("ReadEvents: %v\n%s", err, body)
	}
	return evs
}

// TestFollowBatches: each read becomes one event of its complete lines;
// a partial line waits for its newline; ids are the offsets after each
// batch, counted from the start offset; the last line needs no newline
// once the log ends.
func TestFollowBatches(t *testing.T) {
	rd := &chunks{[]byte("a\nb\nc"), []byte("c\nd"), []byte("\n"), []byte("tail")}
	w := httptest.NewRecorder()
	if err := Follow(w, rd, 100, nil); err != nil {
		t.Fatal(err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	got := readAll(t, w.Body.Bytes())
	want := []Event{
		{ID: 104, From: 100, To: 104, Lines: []string{"a", "b"}},
		{ID: 107, From: 104, To: 107, Lines: []string{"cc"}},
		{ID: 109, From: 107, To: 109, Lines: []string{"d"}},
		{ID: 113, From: 109, To: 113, Lines: []string{"tail"}},
		{Name: "end", ID: 113, To: 113},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\ngot  %+v\nwant %+v", got, want)
	}
}

// TestFollowLongLine: a line longer than an event goes out in pieces,
// and no event carries more than MaxEventBytes of log.
func TestFollowLongLine(t *testing.T) {
	long := strings.Repeat("x", 2*MaxEventBytes+10)
	rd := &chunks{[]byte(long + "\nnext\n")}
	w := httptest.NewRecorder()
	if err := Follow(w, rd, 0, nil); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, e := range readAll(t, w.Body.Bytes()) {
		if e.Name == "" && e.To-e.From > MaxEventBytes {
			t.Errorf("event [%d,%d) holds %d bytes", e.From, e.To, e.To-e.From)
		}
		for _, l := range e.Lines {
			text.WriteString(l + "|")
		}
	}
	if want := strings.Repeat("x", MaxEventBytes) + "|" + strings.Repeat("x", MaxEventBytes) + "|xxxxxxxxxx|next|"; text.String() != want {
		t.Errorf("pieces: got %d bytes, want %d", text.Len(), len(want))
	}
}

// TestFollowStyled: with styling, lines are segments and the style
// carries across events.
func TestFollowStyled(t *testing.T) {
	rd := &chunks{[]byte("\x1b[31mred\n"), []byte("still red <b>\n")}
	w := httptest.NewRecorder()
	if err := Follow(w, rd, 0, NewANSI()); err != nil {
		t.Fatal(err)
	}
	var lines [][]Segment
	for _, chunk := range strings.Split(w.Body.String(), "\n\n") {
		_, data, ok := strings.Cut(chunk, "data: ")
		if !ok || strings.Contains(chunk, "event: end") {
			continue
		}
		var b struct{ Lines [][]Segment }
		if err := json.Unmarshal([]byte(data), &b); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b.Lines...)
	}
	want := [][]Segment{{{Text: "red", Class: "fg1"}}, {{Text: "still red <b>", Class: "fg1"}}}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got %+v, want %+v", lines, want)
	}
	if strings.Contains(w.Body.String(), "<b>") {
		t.Error("markup reached the event stream unescaped")
	}
}

// TestReadEventsTruncated: a stream cut before "end" is an error.
func TestReadEventsTruncated(t *testing.T) {
	err := ReadEvents(strings.NewReader("id: 2\ndata: {\"from\":0,\"to\":2,\"lines\":[\"a\"]}\n\n"), func(Event) error { return nil })
	if err != io.ErrUnexpectedEOF {
		t.Errorf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{{"", []string{}}, {"\n", []string{""}}, {"a\nb", []string{"a", "b"}}, {"a\n\nb\n", []string{"a", "", "b"}}} {
		if got := Lines([]byte(tt.in), nil); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lines(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

// TestFollowLineBound: many short lines in one read go out as several
// events of at most MaxEventLines lines each.
func TestFollowLineBound(t *testing.T) {
	rd := &chunks{[]byte(strings.Repeat("ab\n", 2*MaxEventLines+500))}
	w := httptest.NewRecorder()
	if err := Follow(w, rd, 0, nil); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, e := range readAll(t, w.Body.Bytes()) {
		if e.Name == "" {
			counts = append(counts, len(e.Lines))
		}
	}
	if want := []int{MaxEventLines, MaxEventLines, 500}; !reflect.DeepEqual(counts, want) {
		t.Errorf("lines per event: got %v, want %v", counts, want)
	}
}
