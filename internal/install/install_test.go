package install

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestValid(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"0123456789ab", true},
		{"runnel-run", true},
		{"", false},
		{"ABC", false},
		{"a b", false},
		{"a/b", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	} {
		if got := Valid(c.id); got != c.want {
			t.Errorf("Valid(%q): got %v, want %v", c.id, got, c.want)
		}
	}
	if id := New(); !Valid(id) || len(id) != idLen {
		t.Errorf("New() = %q: not a valid id of %d characters", id, idLen)
	}
	if New() == New() {
		t.Error("two New() ids are equal")
	}
}

func TestLoadKeepsTheID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Errorf("second Load: got %q, want the first id %q", again, first)
	}
	other, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Errorf("two directories got the same id %q", first)
	}
	left, _ := filepath.Glob(filepath.Join(dir, File+".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestLoadRace: processes starting at once on a new directory agree on
// one id.
func TestLoadRace(t *testing.T) {
	dir := t.TempDir()
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := Load(dir)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids differ: %v", ids)
		}
	}
}

func TestLoadRefusesAGarbledFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, File), []byte("not an id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, File)) {
		t.Errorf("got %v, want an error naming %s", err, filepath.Join(dir, File))
	}
}
