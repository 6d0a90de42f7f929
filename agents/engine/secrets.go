package engine

import (
	"fmt"
	"strings"

	"github.com/runnel-ci/runnel/pipeline"
)

// Secret is a secret value the steps of a stage get: as the variable Env,
// or as the file File in the step's secrets directory (whose path is then
// in Env, when set). Engines pass values through their API (environment,
// files), never on a command line, and keep them out of labels and
// anything that outlives the step.
type Secret struct {
	Env   string
	File  string
	Value string
}

// StepEnv returns the environment of step as sorted KEY=VALUE entries:
// the stage env, overlaid by the step env, overlaid by the secrets' own
// variables (secrets win: the stage asked for them by name). A file
// secret's variable holds its path in secretsDir.
func StepEnv(s *Spec, step *pipeline.Step, secretsDir string) []string {
	m := make(map[string]string, len(s.Stage.Env)+len(step.Env)+len(s.Secrets)+1)
	for k, v := range s.Stage.Env {
		m[k] = v
	}
	for k, v := range step.Env {
		m[k] = v
	}
	if len(s.Secrets) > 0 {
		m["RUNNEL_SECRETS_DIR"] = secretsDir
	}
	for _, sec := range s.Secrets {
		switch {
		case sec.Env == "":
		case sec.File != "":
			m[sec.Env] = secretsDir + "/" + sec.File
		default:
			m[sec.Env] = sec.Value
		}
	}
	return envList(m)
}

// SecretFiles returns the file secrets of s.
func SecretFiles(s *Spec) []Secret {
	var out []Secret
	for _, sec := range s.Secrets {
		if sec.File != "" {
			out = append(out, sec)
		}
	}
	return out
}

// fileVar is the variable that carries the content of the i-th file
// secret into a container until the step's preamble has written it.
func fileVar(i int) string { return fmt.Sprintf("RUNNEL_SECRET_FILE_%d", i) }

// SecretFilesPreamble returns shell text that writes the file secrets of
// s into dir (private: umask 077) and unsets the variables that carried
// them, plus those variables (name=content) for the step's environment.
// File names are pipeline.SecretRef file names ([A-Za-z0-9._-]), safe
// inside single quotes; values never appear in the text.
func SecretFilesPreamble(s *Spec, dir string) (script string, env []string) {
	files := SecretFiles(s)
	if len(files) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("(umask 077; ")
	for i, f := range files {
		fmt.Fprintf(&b, "printf %%s \"$%s\" > '%s/%s'; ", fileVar(i), dir, f.File)
		env = append(env, fileVar(i)+"="+f.Value)
	}
	b.WriteString(")\nunset")
	for i := range files {
		b.WriteString(" " + fileVar(i))
	}
	b.WriteString("\n")
	return b.String(), env
}
