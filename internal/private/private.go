// Package private makes the directories that hold a server's or an
// agent's state readable by their owner only. A data directory holds the
// database (webhook secrets, forge tokens, token hashes), signing keys,
// agent credentials, logs and artifacts: nothing in it is for other users
// of the machine. Files below it are created 0600 by their owners
// (runner/store, runner/logstore, artifact/fs, internal/install, ...);
// the directory's own 0700 also covers what third-party code (the
// embedded NATS server) creates with wider modes.
package private

import (
	"fmt"
	"os"
)

// Dir and File are the modes of private directories and files.
const (
	Dir  os.FileMode = 0o700
	File os.FileMode = 0o600
)

// MkdirAll makes dir (and missing parents) with mode Dir and narrows an
// existing dir to Dir, so a data directory made by an older version, or
// by hand, stops being readable by others at the next start.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, Dir); err != nil {
		return fmt.Errorf("create private directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create private directory %s: %w", dir, err)
	}
	if fi.Mode().Perm() != Dir {
		if err := os.Chmod(dir, Dir); err != nil {
			return fmt.Errorf("make %s private: %w", dir, err)
		}
	}
	return nil
}
