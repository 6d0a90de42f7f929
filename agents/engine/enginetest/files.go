package enginetest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/agents/engine"
)

// testFiles checks engine.Files: what CopyIn puts in is what the steps
// see, over the source; CopyOut reports what the steps made, names
// relative to the workspace, links as links, missing paths skipped, and
// refuses to read a path through a symbolic link.
func testFiles(t *testing.T, c Config) {
	files := c.Engine.(engine.Files)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "keep.txt"), []byte("from source\n"), 0o644))
	s := NewSpec(t, c.Image, nil, src)
	SetUp(t, c, s)
	ctx := context.Background()

	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, e := range []struct{ name, body, link string }{
		{name: "in/a.txt", body: "alpha\n"},
		{name: "foo..bar", body: "odd\n"},
		{name: ".hidden", body: "hidden\n"},
		{name: "d/l", link: "../in/a.txt"},
	} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		must(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(e.body))
		must(t, err)
	}
	must(t, tw.Close())
	if err := files.CopyIn(ctx, s, &in); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	script := `cat in/a.txt foo..bar .hidden d/l keep.txt
mkdir -p out/sub && echo made > out/sub/f.txt && ln -s /etc out/abs && ln -s sub out/rel && ln -s out linkdir`
	code, out, err := RunStep(ctx, t, c, s, script, nil)
	if want := "alpha\nodd\nhidden\nalpha\nfrom source\n"; err != nil || code != 0 || out != want {
		t.Fatalf("step after CopyIn: got %d, %v, %q; want 0, nil, %q", code, err, out, want)
	}

	got := map[string]string{} // name -> content, or "-> target", or "dir"
	collect := func(h *tar.Header, r io.Reader) error {
		switch h.Typeflag {
		case tar.TypeDir:
			got[strings.TrimSuffix(h.Name, "/")] = "dir"
		case tar.TypeSymlink:
			got[h.Name] = "-> " + h.Linkname
		default:
			b, err := io.ReadAll(r)
			got[h.Name] = string(b)
			return err
		}
		return nil
	}
	if err := files.CopyOut(ctx, s, []string{"out", "missing", "in/a.txt"}, collect); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	want := map[string]string{"out": "dir", "out/sub": "dir", "out/sub/f.txt": "made\n", "out/abs": "-> /etc", "out/rel": "-> sub", "in/a.txt": "alpha\n"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("CopyOut %s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("CopyOut reported %v, want exactly %v", got, want)
	}

	err = files.CopyOut(ctx, s, []string{"linkdir/sub"}, collect)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("CopyOut through a linked parent: err %v, want it refused", err)
	}

	var all []string
	err = files.CopyOut(ctx, s, []string{""}, func(h *tar.Header, r io.Reader) error {
		all = append(all, strings.TrimSuffix(h.Name, "/"))
		return nil
	})
	if err != nil {
		t.Fatalf("CopyOut of the workspace: %v", err)
	}
	for _, name := range []string{"keep.txt", "out/sub/f.txt", ".hidden", "linkdir"} {
		if !slices.Contains(all, name) {
			t.Errorf("CopyOut of the workspace lacks %s (got %v)", name, all)
		}
	}
}
