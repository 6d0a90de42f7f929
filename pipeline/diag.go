package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says whether a diagnostic makes the file unusable.
type Severity int

// Severities.
const (
	SeverityError   Severity = iota // the file is rejected
	SeverityWarning                 // the file is accepted; the author should look
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// MarshalText encodes s as its String.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON reads "error" or "warning", and the numbers that
// diagnostics stored before severities were named hold.
func (s *Severity) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"error"`, "0":
		*s = SeverityError
	case `"warning"`, "1":
		*s = SeverityWarning
	default:
		return fmt.Errorf("severity %s: want \"error\" or \"warning\"", b)
	}
	return nil
}

// Diagnostic codes. They are stable: tools and tests may match on them.
// docs/pipeline.md lists them with examples.
const (
	CodeYAMLSyntax        = "yaml-syntax"
	CodeFileTooLarge      = "file-too-large"
	CodeTooComplex        = "too-complex"
	CodeMultipleDocuments = "multiple-documents"
	CodeBadVersion        = "bad-version"
	CodeUnknownKey        = "unknown-key"
	CodeDuplicateKey      = "duplicate-key"
	CodeWrongType         = "wrong-type"
	CodeMissingField      = "missing-field"
	CodeBadValue          = "bad-value"
	CodeBadName           = "bad-name"
	CodeReservedName      = "reserved-name"
	CodeDuplicateName     = "duplicate-name"
	CodeUnknownNeed       = "unknown-need"
	CodeCycle             = "cycle"
	CodeBadGlob           = "bad-glob"
	CodeBadDuration       = "bad-duration"
	CodeBadMatrix         = "bad-matrix"
	CodeMatrixTooLarge    = "matrix-too-large"
	CodeUnsupported       = "unsupported"
	CodeBadPath           = "bad-path"
	CodeNotANeed          = "not-a-need"
	// CodeNotAllowed is reported by CheckPolicy, not Parse: container
	// permissions are granted on the server.
	CodeNotAllowed = "not-allowed"
	// CodeUndeclaredEnvironment is reported by PlanFor, not Parse: the
	// environments are declared on the server.
	CodeUndeclaredEnvironment = "undeclared-environment"
	// CodeUnknownSecret is reported by CheckSecrets, not Parse: secrets
	// are set on the server.
	CodeUnknownSecret = "unknown-secret"

	// Warnings.
	CodeDuplicateNeed       = "duplicate-need"
	CodeTimeoutExceedsStage = "timeout-exceeds-stage"
	CodeStatusWithoutNeeds  = "status-without-needs"
	CodeUnexpanded          = "unexpanded-variable"
)

// Diagnostic is one problem found in a pipeline file, with the position of
// the offending node. Line and Col are 1-based.
type Diagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// String formats d as "file:line:col: code: message"; warnings get a
// "warning: " prefix before the code so that errors keep the plain form
// editors and CI annotations expect.
func (d Diagnostic) String() string {
	if d.Severity == SeverityWarning {
		return fmt.Sprintf("%s:%d:%d: warning: %s: %s", d.File, d.Line, d.Col, d.Code, d.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Line, d.Col, d.Code, d.Message)
}

// Diagnostics is every problem found in one file, ordered by position. It
// is the error Parse returns when the file has errors.
type Diagnostics []Diagnostic

// Error joins the diagnostics, one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// HasErrors reports whether any diagnostic is an error (not a warning).
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

func sortDiagnostics(ds Diagnostics) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Col, b.Col)
	})
}
