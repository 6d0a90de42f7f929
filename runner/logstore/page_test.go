package logstore

import (
	"testing"

	"github.com/runnel-ci/runnel/runner/logview"
)

// TestPage: a log not written yet is an empty page; a page is final only
// when the step ended and no writer here holds the log, so a log whose
// writer went away (a crash) ends with its partial last line.
func TestPage(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := Key{Run: "7", Stage: "build", Attempt: 1, Step: "0"}
	q := logview.Query{Tail: true}
	for _, ended := range []bool{false, true} {
		p, err := s.Page(k, ended, q)
		if err != nil || p.Final != ended || p.Size != 0 || len(p.Data) != 0 {
			t.Errorf("not written, ended %v: got %+v, %v; want an empty page, final %v", ended, p, err, ended)
		}
	}
	if err := s.Append(k, 0, []byte("one\ntw")); err != nil {
		t.Fatal(err)
	}
	// Written here: not final even when the step ended, the rest may be
	// on its way.
	p, err := s.Page(k, true, q)
	if err != nil || p.Final || string(p.Data) != "one\n" {
		t.Errorf("live: got %q final %v, %v; want %q, not final", p.Data, p.Final, err, "one\n")
	}
	s.Close() // the writer went away without finishing
	s2, err := New(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if p, err := s2.Page(k, false, q); err != nil || p.Final || string(p.Data) != "one\n" {
		t.Errorf("step running: got %q final %v, %v; want %q, not final", p.Data, p.Final, err, "one\n")
	}
	if p, err := s2.Page(k, true, q); err != nil || !p.Final || string(p.Data) != "one\ntw" {
		t.Errorf("step ended: got %q final %v, %v; want %q, final", p.Data, p.Final, err, "one\ntw")
	}
}
