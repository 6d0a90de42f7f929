// Package install gives each Runnel install an id: a server's data
// directory, an agent's work directory, one `runnel run` process, one test.
// Everything an install makes on a shared Docker engine carries its id
// (agents/engine/docker), and its cleanup only ever removes what carries
// it, so installs and test suites sharing one engine never touch each
// other. A directory's id is kept in its File and survives restarts, so a
// restarted server or agent recognises what its crashed predecessor left.
package install

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is the name of the file holding a directory's install id.
const File = "install-id"

// idLen is the length of a new id: 12 hex digits (48 random bits) keep
// Docker names short; a collision between the installs of one engine is
// out of reach.
const idLen = 12

// New returns a fresh random id.
func New() string {
	b := make([]byte, idLen/2)
	// crypto/rand.Read never returns an error (it panics when the system
	// has no randomness at all).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Valid reports whether id can be an install id: 1 to 64 characters of
// a-z, 0-9 and '-'. Ids become part of Docker names and labels.
func Valid(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Load returns the install id of dir, kept in dir/File, making dir and a
// new id when there is none yet. Several processes loading the same new
// directory at once all get the same id: the file appears complete or not
// at all (written aside, then linked into place, which fails when another
// process was first).
func Load(dir string) (string, error) {
	path := filepath.Join(dir, File)
	if id, err := read(path); !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("install id: %w", err)
	}
	tmp, err := os.CreateTemp(dir, File+".*")
	if err != nil {
		return "", fmt.Errorf("install id: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(New() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("install id: write %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("install id: %w", err)
	}
	return read(path)
}

func read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !Valid(id) {
		return "", fmt.Errorf("%s: %q is not an install id (1-64 of a-z, 0-9, '-'); restore the file, as Runnel finds what this install left on Docker by it", path, id)
	}
	return id, nil
}
