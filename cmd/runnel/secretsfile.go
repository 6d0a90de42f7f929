package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
)

// maxSecretsFile bounds a --secrets-file.
const maxSecretsFile = 1 << 20

// parseSecretsFile reads the secrets of `runnel run --secrets-file`:
// dotenv lines NAME=value (the value taken verbatim up to the end of the
// line, a trailing \r removed), blank lines and # comments. Errors name
// file:line.
func parseSecretsFile(path string, src []byte) (map[string]string, error) {
	if len(src) > maxSecretsFile {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, len(src), maxSecretsFile)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), maxSecretsFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), "export "))
		switch {
		case !ok:
			return nil, fmt.Errorf("%s:%d: want NAME=value", path, n)
		case pipeline.CheckSecretName(name) != nil:
			return nil, fmt.Errorf("%s:%d: %v", path, n, pipeline.CheckSecretName(name))
		case len(value) < pipeline.MinSecretLen:
			return nil, fmt.Errorf("%s:%d: secret %s has %d bytes; secrets must have at least %d (shorter ones cannot be masked usefully)", path, n, name, len(value), pipeline.MinSecretLen)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: secret %s is set twice", path, n, name)
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// readSecretsFile reads and parses a --secrets-file ("" means none).
func readSecretsFile(path string) (map[string]string, error) {
	if path == "" {
		return map[string]string{}, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secrets-file: %w", err)
	}
	return parseSecretsFile(path, src)
}

// stageSecrets returns the engine secrets of st from vals.
func stageSecrets(st *pipeline.Stage, vals map[string]string) []engine.Secret {
	var out []engine.Secret
	for _, ref := range st.Secrets {
		out = append(out, engine.Secret{Env: ref.Env, File: ref.File, Value: vals[ref.Name]})
	}
	return out
}
