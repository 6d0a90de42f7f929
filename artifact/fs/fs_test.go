package fs_test

import (
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/artifact"
	"github.com/runnel-ci/runnel/artifact/fs"
	"github.com/runnel-ci/runnel/artifact/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func() artifact.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.Options{
		Corrupt: func(t *testing.T, s artifact.Store, key string) {
			p, err := s.(*fs.Store).ObjectPath(key)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// A key and a longer key below it must both be storable (file vs directory).
func TestKeyAndChildCoexist(t *testing.T) {
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"a", "a/b", "a.d", "a.d/c", "x.obj", "x.json", "x"} {
		if _, err := s.Put(ctx, k, strings.NewReader(k), -1); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	infos, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(infos), 7; got != want {
		t.Errorf("List returned %d objects, want %d: %+v", got, want, infos)
	}
}

// Artifacts and caches are the repositories' data: only the server's user
// reads them.
func TestPrivate(t *testing.T) {
	root := t.TempDir()
	s, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "runs/1/build/out.tar", strings.NewReader("data"), 4); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
