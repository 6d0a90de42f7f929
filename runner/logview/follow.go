package logview

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxEventBytes and MaxEventLines bound the log bytes and lines in one
// followed event, so a client can render any event at once.
const (
	MaxEventBytes = 64 << 10
	MaxEventLines = 1000
)

// Batch is the JSON of a page and of each event of a followed log: the
// lines of bytes [From, To). Lines holds strings (invalid UTF-8
// replaced), or with styling each line as Segments.
type Batch struct {
	From  int64 `json:"from"`
	To    int64 `json:"to"`
	Size  int64 `json:"size,omitempty"`
	Final bool  `json:"final,omitempty"`
	Lines any   `json:"lines"`
}

// Lines splits data into lines without their newlines (a trailing
// newline ends the last line, it does not start an empty one). With a
// non-nil ANSI each line is converted to styled segments, else it is
// the raw text.
func Lines(data []byte, a *ANSI) any {
	var raw []string
	var styled [][]Segment
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if a != nil {
			styled = append(styled, a.Line(string(line)))
		} else {
			raw = append(raw, string(line))
		}
	}
	if a != nil {
		if styled == nil {
			return [][]Segment{}
		}
		return styled
	}
	if raw == nil {
		return []string{}
	}
	return raw
}

// PageBatch is a page as a Batch.
func PageBatch(p Page, a *ANSI) Batch {
	return Batch{From: p.From, To: p.To, Size: p.Size, Final: p.Final, Lines: Lines(p.Data, a)}
}

// Follow streams rd, a log positioned at byte offset from, as
// Server-Sent Events until rd ends: each event is a Batch of the
// complete lines read so far (at most MaxEventBytes; a longer line is
// sent in pieces), with the offset after it as the event id, so a
// reconnecting EventSource resumes with Last-Event-ID. When rd ends
// (the step finished) the last line is sent even without a newline,
// then an "end" event. With a non-nil ANSI the lines are styled
// segments, the style carrying from line to line. It returns when rd
// fails or ends, or a write fails.
func Follow(w http.ResponseWriter, rd io.Reader, from int64, a *ANSI) error {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return err
	}
	buf := make([]byte, 0, MaxEventBytes)
	for {
		n, rerr := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := errors.Is(rerr, io.EOF)
		for {
			cut := batchEnd(buf, eof)
			if cut == 0 {
				break
			}
			b := Batch{From: from, To: from + int64(cut), Lines: Lines(buf[:cut], a)}
			if err := writeEvent(w, "", b.To, b); err != nil {
				return err
			}
			from = b.To
			buf = buf[:copy(buf, buf[cut:])]
		}
		if n > 0 {
			if err := rc.Flush(); err != nil {
				return err
			}
		}
		if eof {
			if err := writeEvent(w, "end", from, map[string]int64{"to": from}); err != nil {
				return err
			}
			return rc.Flush()
		}
		if rerr != nil {
			return rerr
		}
	}
}

// batchEnd is how much of buf the next event carries: its first
// MaxEventLines complete lines; a full buffer without a newline (a piece
// of a long line); at the end of the log, also an unterminated last line.
// 0 means wait for more.
func batchEnd(buf []byte, eof bool) int {
	lines, end := 0, 0
	for i := 0; i < len(buf); {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
		end = i
		if lines++; lines == MaxEventLines {
			return end
		}
	}
	if end == 0 && len(buf) == cap(buf) || eof {
		return len(buf)
	}
	return end
}

func writeEvent(w io.Writer, name string, id int64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode log event: %w", err)
	}
	var head []byte
	if name != "" {
		head = append(head, "event: "+name+"\n"...)
	}
	head = append(head, "id: "...)
	head = strconv.AppendInt(head, id, 10)
	head = append(head, "\ndata: "...)
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n\n")
	return err
}

// FollowText streams rd as plain text, flushing after every read, until
// rd ends or fails or a write fails.
func FollowText(w http.ResponseWriter, rd io.Reader) error {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Event is one event of a followed log as a client reads it: a batch of
// raw lines, or (Name "end") the end of the log at offset To.
type Event struct {
	Name  string // "" for a batch of lines, "end" at the end
	ID    int64
	From  int64
	To    int64
	Lines []string
}

// ReadEvents reads the events Follow writes (without styling) from r
// and calls fn for each, until the "end" event (nil), the end of r
// (io.ErrUnexpectedEOF), a malformed event or an error from fn.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 8*MaxEventBytes)
	var ev Event
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data == nil {
				continue
			}
			var b struct {
				From  int64    `json:"from"`
				To    int64    `json:"to"`
				Lines []string `json:"lines"`
			}
			if err := json.Unmarshal(data, &b); err != nil {
				return fmt.Errorf("log event %d: %w", ev.ID, err)
			}
			ev.From, ev.To, ev.Lines = b.From, b.To, b.Lines
			if err := fn(ev); err != nil || ev.Name == "end" {
				return err
			}
			ev, data = Event{}, nil
		case bytes.HasPrefix(line, []byte("event: ")):
			ev.Name = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("id: ")):
			id, err := strconv.ParseInt(string(line[len("id: "):]), 10, 64)
			if err != nil {
				return fmt.Errorf("log event id %q: %w", line, err)
			}
			ev.ID = id
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):]...)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}
