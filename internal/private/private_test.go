package private

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "a", "b")
	old := filepath.Join(root, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{fresh, old} {
		if err := MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != Dir {
			t.Errorf("%s: mode %v, want %v", dir, got, Dir)
		}
	}
}
