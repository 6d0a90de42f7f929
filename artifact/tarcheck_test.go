package artifact_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/artifact"
)

// TestEntryCheckerTraversal feeds one stream per attack and expects the
// attacking entry refused; the odd but legal names pass.
func TestEntryCheckerTraversal(t *testing.T) {
	refused := []struct {
		name    string
		entries []entry
	}{
		{"dot-dot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}},
		{"dot-dot inside", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []entry{{name: "/etc/passwd", typ: tar.TypeReg, body: "x"}}},
		{"backslash", []entry{{name: `..\evil`, typ: tar.TypeReg, body: "x"}}},
		{"encoded traversal is a literal name but a control char is not", []entry{{name: "a\x1b/b", typ: tar.TypeReg, body: "x"}}},
		{"symlink absolute", []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}}},
		{"symlink up", []entry{{name: "a/l", typ: tar.TypeSymlink, link: "../../etc"}}},
		{"write below symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "."}, {name: "l/f", typ: tar.TypeReg, body: "x"}}},
		{"replace symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "x"}, {name: "l", typ: tar.TypeReg, body: "x"}}},
		{"hard link", []entry{{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}}},
		{"device", []entry{{name: "c", typ: tar.TypeChar}}},
		{"fifo", []entry{{name: "p", typ: tar.TypeFifo}}},
		{"empty segment", []entry{{name: "a//b", typ: tar.TypeReg, body: "x"}}},
		{"dot segment", []entry{{name: "a/./b", typ: tar.TypeReg, body: "x"}}},
		{"invalid UTF-8", []entry{{name: "\xff\xfe", typ: tar.TypeReg, body: "x"}}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAll(t, tarOf(t, tc.entries...))
			if !errors.Is(err, artifact.ErrBadKey) && !errors.Is(err, artifact.ErrArchive) {
				t.Fatalf("Check accepted the stream (err %v), want ErrBadKey or ErrArchive", err)
			}
		})
	}
	// A NUL cannot be written into a tar by archive/tar (a hand-made
	// header could carry one): check the header directly.
	var c artifact.EntryChecker
	if _, _, err := c.Check(&tar.Header{Name: "ok\x00/../../evil", Typeflag: tar.TypeReg}); !errors.Is(err, artifact.ErrBadKey) {
		t.Errorf("NUL in a name: err %v, want ErrBadKey", err)
	}
	// %2e%2e is not a traversal: it is a file named "%2e%2e".
	legal := []entry{
		{name: "foo..bar", typ: tar.TypeReg, body: "x"},
		{name: ".hidden", typ: tar.TypeReg, body: "x"},
		{name: "..hidden/x", typ: tar.TypeReg, body: "x"},
		{name: "%2e%2e/x", typ: tar.TypeReg, body: "x"},
		{name: "ünï cödé/ok.txt", typ: tar.TypeReg, body: "x"},
		{name: "./dir/", typ: tar.TypeDir},
		{name: "dir/link", typ: tar.TypeSymlink, link: "../foo..bar"},
	}
	if err := checkAll(t, tarOf(t, legal...)); err != nil {
		t.Fatalf("Check refused legal names: %v", err)
	}
}

func checkAll(t *testing.T, data []byte) error {
	t.Helper()
	var c artifact.EntryChecker
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // an unreadable stream is refused too
		}
		if _, _, err := c.Check(h); err != nil {
			return err
		}
	}
}

func TestEntryCheckerLimits(t *testing.T) {
	c := artifact.EntryChecker{Opts: artifact.ExtractOptions{MaxBytes: 10, MaxEntries: 2}}
	if _, _, err := c.Check(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 8}); err != nil {
		t.Fatalf("first entry: %v", err)
	}
	if _, _, err := c.Check(&tar.Header{Name: "b", Typeflag: tar.TypeReg, Size: 3}); !errors.Is(err, artifact.ErrArchive) {
		t.Fatalf("over MaxBytes: err %v, want ErrArchive", err)
	}
	if _, _, err := c.Check(&tar.Header{Name: "c", Typeflag: tar.TypeDir}); !errors.Is(err, artifact.ErrArchive) || !strings.Contains(err.Error(), "entries") {
		t.Fatalf("over MaxEntries: err %v, want ErrArchive about entries", err)
	}
}

// FuzzEntryChecker: whatever the checker accepts, ExtractTar accepts too
// and nothing lands outside the target (the checker is never the weaker
// of the two gates).
func FuzzEntryChecker(f *testing.F) {
	f.Add("a", byte(tar.TypeSymlink), ".", "a/f")
	f.Add("l", byte(tar.TypeSymlink), "../x", "l")
	f.Add("d", byte(tar.TypeDir), "", "d/../x")
	f.Add("foo..bar", byte(tar.TypeReg), "", ".hidden")
	f.Add("0", byte(tar.TypeDir), "", "0") // a file replacing a directory
	f.Add("0", byte('S'), "0", "0")        // unreadable (GNU sparse) header
	f.Fuzz(func(t *testing.T, n1 string, t1 byte, l1 string, n2 string) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range []entry{{name: n1, typ: t1, link: l1}, {name: n2, typ: tar.TypeReg, body: "payload"}} {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			tw.Write([]byte(e.body))
		}
		if tw.Close() != nil {
			return
		}
		if checkAll(t, buf.Bytes()) != nil {
			return
		}
		dir := t.TempDir()
		if err := artifact.ExtractTar(t.Context(), bytes.NewReader(buf.Bytes()), dir, artifact.ExtractOptions{}); err != nil {
			t.Fatalf("checker accepted what ExtractTar refuses: %v", err)
		}
	})
}
