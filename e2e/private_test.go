package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDataDirPrivate is `ls -l` of a fresh data directory: after a first
// start of the server (with an agent credential made beforehand), the
// directory is 0700, no file or directory below it grants anything to
// other users, and the files holding secrets or data are 0600.
func TestDataDirPrivate(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	runnel(t, "agent", "token", "private-e2e", "--data", data)
	srv := startServer(t, dir, "", "--backend", "local")
	srv.stop(syscall.SIGINT)

	var listing strings.Builder
	modes := map[string]os.FileMode{}
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		modes[rel] = fi.Mode()
		fmt.Fprintf(&listing, "%v %s\n", fi.Mode(), rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ls -lR %s:\n%s", data, listing.String())
	if got := modes["."].Perm(); got != 0o700 {
		t.Errorf("data dir: mode %v, want 0700", got)
	}
	for rel, m := range modes {
		if m.Perm()&0o007 != 0 {
			t.Errorf("%s: mode %v grants access to other users", rel, m)
		}
	}
	for _, rel := range []string{"runnel.db", "install-id", "transfer.key", "nats-agents.json"} {
		m, ok := modes[rel]
		if !ok {
			t.Errorf("%s: missing from the data dir", rel)
			continue
		}
		if m.Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", rel, m.Perm())
		}
	}
	for rel, m := range modes {
		if (strings.HasPrefix(rel, "logs") || strings.HasPrefix(rel, "artifacts") || strings.HasPrefix(rel, "runnel.db")) &&
			(m.IsDir() && m.Perm() != 0o700 || !m.IsDir() && m.Perm() != 0o600) {
			t.Errorf("%s: mode %v, want 0700 for directories, 0600 for files", rel, m)
		}
	}
}
