package artifact_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/artifact"
)

func TestSafeJoin(t *testing.T) {
	dir := filepath.FromSlash("/work/out")
	for _, tc := range []struct {
		name string
		want string // "" means an error wrapping ErrBadKey
	}{
		{"a/b.txt", "/work/out/a/b.txt"},
		{"./a/b", "/work/out/a/b"},
		{"dir/", "/work/out/dir"},
		{"./", "/work/out"},
		{".", "/work/out"},
		{"../x", ""},
		{"a/../../x", ""},
		{"/etc/passwd", ""},
		{`..\x`, ""},
		{"a//b", ""},
		{"", ""},
		{"a\x00", ""},
		{".//a", ""},
	} {
		got, err := artifact.SafeJoin(dir, tc.name)
		if tc.want == "" {
			if !errors.Is(err, artifact.ErrBadKey) {
				t.Errorf("SafeJoin(%q) = %q, %v; want ErrBadKey", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != filepath.FromSlash(tc.want) {
			t.Errorf("SafeJoin(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

type entry struct {
	name string
	typ  byte
	link string
	body string
	mode int64
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "git archive"}}
		}
		if h.Mode == 0 && e.typ != tar.TypeXGlobalHeader {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractTar(t *testing.T) {
	dir := t.TempDir()
	data := tarOf(t,
		entry{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		entry{name: "./", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		entry{name: "lib/deep/file.txt", typ: tar.TypeReg, body: "deep"},
		entry{name: "lib/link", typ: tar.TypeSymlink, link: "deep/file.txt"},
		entry{name: "up", typ: tar.TypeSymlink, link: "lib/../bin"},
		entry{name: "bin/tool", typ: tar.TypeReg, body: "replaced"},
	)
	if err := artifact.ExtractTar(t.Context(), bytes.NewReader(data), dir, artifact.ExtractOptions{}); err != nil {
		t.Fatalf("ExtractTar: %v", err)
	}
	for name, want := range map[string]string{"bin/tool": "replaced", "lib/deep/file.txt": "deep", "lib/link": "deep"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		t.Errorf("bin/tool mode %v keeps setuid, want it dropped", fi.Mode())
	}
}

func TestExtractTarRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		limits  artifact.ExtractOptions
		badKey  bool // ErrBadKey rather than ErrArchive
	}{
		{"dotdot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}, artifact.ExtractOptions{}, true},
		{"nested dotdot", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}, artifact.ExtractOptions{}, true},
		{"absolute", []entry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}, artifact.ExtractOptions{}, true},
		{"backslash", []entry{{name: `..\evil`, typ: tar.TypeReg, body: "x"}}, artifact.ExtractOptions{}, true},
		{"absolute symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}}, artifact.ExtractOptions{}, false},
		{"escaping symlink", []entry{{name: "a/l", typ: tar.TypeSymlink, link: "../../etc"}}, artifact.ExtractOptions{}, false},
		{"write through symlink", []entry{
			{name: "l", typ: tar.TypeSymlink, link: "sub"},
			{name: "sub/", typ: tar.TypeDir},
			{name: "l/f", typ: tar.TypeReg, body: "x"},
		}, artifact.ExtractOptions{}, false},
		{"symlink chain", []entry{
			{name: "a", typ: tar.TypeSymlink, link: "."},
			{name: "a/l", typ: tar.TypeSymlink, link: "../outside"},
		}, artifact.ExtractOptions{}, false},
		{"file replaces symlink", []entry{
			{name: "l", typ: tar.TypeSymlink, link: "x"},
			{name: "l", typ: tar.TypeReg, body: "x"},
		}, artifact.ExtractOptions{}, false},
		{"hard link", []entry{{name: "f", typ: tar.TypeReg, body: "x"}, {name: "h", typ: tar.TypeLink, link: "f"}}, artifact.ExtractOptions{}, false},
		{"char device", []entry{{name: "null", typ: tar.TypeChar}}, artifact.ExtractOptions{}, false},
		{"fifo", []entry{{name: "p", typ: tar.TypeFifo}}, artifact.ExtractOptions{}, false},
		{"too large", []entry{{name: "a", typ: tar.TypeReg, body: "123"}, {name: "b", typ: tar.TypeReg, body: "45"}}, artifact.ExtractOptions{MaxBytes: 4}, false},
		{"too many", []entry{{name: "a", typ: tar.TypeDir}, {name: "b", typ: tar.TypeDir}, {name: "c", typ: tar.TypeDir}}, artifact.ExtractOptions{MaxEntries: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "x")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := artifact.ExtractTar(t.Context(), bytes.NewReader(tarOf(t, tc.entries...)), dir, tc.limits)
			want := artifact.ErrArchive
			if tc.badKey {
				want = artifact.ErrBadKey
			}
			if !errors.Is(err, want) {
				t.Errorf("ExtractTar: got %v, want %v", err, want)
			}
			assertContained(t, parent, dir)
		})
	}
}

// assertContained checks that nothing exists in parent but dir, and that no
// symlink under dir points outside it.
func assertContained(t *testing.T, parent, dir string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Join(parent, e.Name()) != dir && e.Name() != "sentinel" {
			t.Errorf("extraction created %s outside the target directory", e.Name())
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			t.Errorf("readlink %s: %v", p, err)
			return nil
		}
		if filepath.IsAbs(target) {
			t.Errorf("symlink %s -> %s is absolute", p, target)
			return nil
		}
		rel, err := filepath.Rel(dir, filepath.Join(filepath.Dir(p), target))
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Errorf("symlink %s -> %s leads out of %s", p, target, dir)
		}
		return nil
	})
}

func FuzzSafeJoin(f *testing.F) {
	for _, s := range []string{"a/b", "./a", "../a", "/a", "a/", ".", "./", `a\b`} {
		f.Add(s)
	}
	dir := filepath.FromSlash("/srv/x")
	f.Fuzz(func(t *testing.T, name string) {
		p, err := artifact.SafeJoin(dir, name)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("SafeJoin(%q, %q) = %q, outside", dir, name, p)
		}
	})
}

func FuzzExtractTar(f *testing.F) {
	f.Add("a", byte(tar.TypeSymlink), ".", "a/l", byte(tar.TypeSymlink), "../x", "a/l/f")
	f.Add("l", byte(tar.TypeSymlink), "sub", "sub", byte(tar.TypeDir), "", "l/f")
	f.Add("../x", byte(tar.TypeReg), "", "/abs", byte(tar.TypeReg), "", "ok")
	f.Add("d", byte(tar.TypeDir), "", "d/l", byte(tar.TypeSymlink), "..", "d/l/f")
	f.Add("h", byte(tar.TypeLink), "/etc/passwd", "c", byte(tar.TypeChar), "", "x")
	f.Fuzz(func(t *testing.T, n1 string, t1 byte, l1 string, n2 string, t2 byte, l2 string, n3 string) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range []entry{{name: n1, typ: t1, link: l1}, {name: n2, typ: t2, link: l2}, {name: n3, typ: tar.TypeReg, body: "payload"}} {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644}
			if e.typ == tar.TypeReg {
				h.Size = int64(len(e.body))
			}
			if tw.WriteHeader(h) != nil {
				return // not representable as tar
			}
			if h.Size > 0 {
				tw.Write([]byte(e.body))
			}
		}
		if tw.Close() != nil {
			return
		}
		parent := t.TempDir()
		if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "x")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		artifact.ExtractTar(t.Context(), &buf, dir, artifact.ExtractOptions{MaxBytes: 1 << 20})
		if b, err := os.ReadFile(filepath.Join(parent, "sentinel")); err != nil || string(b) != "keep" {
			t.Fatalf("sentinel outside the target changed: %q, %v", b, err)
		}
		assertContained(t, parent, dir)
	})
}

// A file already in the target that is a hard link to a file elsewhere is
// replaced, not written through.
func TestExtractTarReplacesHardLink(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	data := tarOf(t, entry{name: "f", typ: tar.TypeReg, body: "new"})
	if err := artifact.ExtractTar(t.Context(), bytes.NewReader(data), dir, artifact.ExtractOptions{}); err != nil {
		t.Fatalf("ExtractTar: %v", err)
	}
	if got, _ := os.ReadFile(outside); string(got) != "keep" {
		t.Errorf("outside file = %q, want %q", got, "keep")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "new" {
		t.Errorf("extracted file = %q, want %q", got, "new")
	}
}
