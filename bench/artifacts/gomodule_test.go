package artifacts

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// goPipeline tests the generated module with Go's caches in the
// workspace, cached by the hash of go.mod and go.sum (docs/pipeline.md,
// "Go recipe").
const goPipeline = `version: 1
stages:
  test:
    image: runnel-test/go:latest
    timeout: 30m
    env:
      CGO_ENABLED: "0"
      GOTOOLCHAIN: local
      GOFLAGS: -buildvcs=false
      GOCACHE: /workspace/.cache/go-build
      GOMODCACHE: /workspace/.cache/go-mod
    cache:
      - key: {prefix: go, files: [go.mod, "**/go.sum"]}
        fallback: [go-]
        paths: [.cache/go-build, .cache/go-mod]
    steps:
      - name: test
        run: go test ./...
`

// packages of the generated module: each imports a good part of a corner
// of the standard library, and its test uses it.
var packages = map[string][2]string{
	"web": {`package web

import (
	"encoding/json"
	"net/http"
)

// Handler answers {"hello": name}.
func Handler(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(map[string]string{"hello": r.URL.Query().Get("name")})
}
`, `package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(Handler))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "?name=gopher")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m["hello"] != "gopher" {
		t.Fatalf("got %v, %v", m, err)
	}
}
`},
	"sign": {`package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
)

// KeyPEM makes a P-256 key and returns it PEM-encoded with a digest.
func KeyPEM() ([]byte, [32]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, [32]byte{}, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, [32]byte{}, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return b, sha256.Sum256(b), nil
}
`, `package sign

import (
	"crypto/tls"
	"testing"
)

func TestKeyPEM(t *testing.T) {
	b, sum, err := KeyPEM()
	if err != nil || len(b) == 0 || sum == [32]byte{} {
		t.Fatalf("KeyPEM: %v", err)
	}
	if tls.VersionTLS13 == 0 {
		t.Fatal("no TLS 1.3")
	}
}
`},
	"text": {`package text

import (
	"bytes"
	"html/template"
	"regexp"
	"strings"
	ttemplate "text/template"
)

var word = regexp.MustCompile(` + "`[A-Za-z]+`" + `)

// Render fills both kinds of template and counts words.
func Render(name string) (string, int, error) {
	var a, b bytes.Buffer
	if err := ttemplate.Must(ttemplate.New("t").Parse("hi {{.}}")).Execute(&a, name); err != nil {
		return "", 0, err
	}
	if err := template.Must(template.New("h").Parse("<p>{{.}}</p>")).Execute(&b, name); err != nil {
		return "", 0, err
	}
	s := a.String() + " " + b.String()
	return strings.TrimSpace(s), len(word.FindAllString(s, -1)), nil
}
`, `package text

import "testing"

func TestRender(t *testing.T) {
	s, n, err := Render("<x>")
	if err != nil || n == 0 || s == "" {
		t.Fatalf("Render = %q, %d, %v", s, n, err)
	}
}
`},
	"pack": {`package pack

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
)

// Roundtrip packs data as tar.gz and zip and reads the tar back.
func Roundtrip(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	gz.Close()
	zw := zip.NewWriter(io.Discard)
	w, _ := zw.Create("f")
	w.Write(data)
	zw.Close()
	gr, err := gzip.NewReader(&buf)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gr)
	if _, err := tr.Next(); err != nil {
		return nil, err
	}
	return io.ReadAll(tr)
}
`, `package pack

import (
	"bytes"
	"testing"
)

func TestRoundtrip(t *testing.T) {
	in := bytes.Repeat([]byte("data"), 1000)
	out, err := Roundtrip(in)
	if err != nil || !bytes.Equal(in, out) {
		t.Fatalf("Roundtrip: %v", err)
	}
}
`},
	"records": {`package records

import (
	"database/sql/driver"
	"encoding/csv"
	"encoding/xml"
	"strings"
	"time"
)

// Row is a record in three encodings.
type Row struct {
	Name string    ` + "`xml:\"name\"`" + `
	When time.Time ` + "`xml:\"when\"`" + `
}

// Value makes Row a driver.Valuer.
func (r Row) Value() (driver.Value, error) { return r.Name, nil }

// Encode writes rows as CSV and XML.
func Encode(rows []Row) (string, string, error) {
	var c strings.Builder
	w := csv.NewWriter(&c)
	for _, r := range rows {
		w.Write([]string{r.Name, r.When.Format(time.RFC3339)})
	}
	w.Flush()
	x, err := xml.Marshal(rows)
	return c.String(), string(x), err
}
`, `package records

import (
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	c, x, err := Encode([]Row{{Name: "a", When: time.Unix(0, 0).UTC()}})
	if err != nil || c == "" || x == "" {
		t.Fatalf("Encode: %q %q %v", c, x, err)
	}
}
`},
	"source": {`package source

import (
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
)

// Funcs parses Go source, counts its functions and formats it.
func Funcs(src string) (int, []byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	ast.Inspect(f, func(x ast.Node) bool {
		if _, ok := x.(*ast.FuncDecl); ok {
			n++
		}
		return true
	})
	out, err := format.Source([]byte(src))
	return n, out, err
}
`, `package source

import "testing"

func TestFuncs(t *testing.T) {
	n, out, err := Funcs("package x\nfunc a(){}\nfunc b() {}\n")
	if err != nil || n != 2 || len(out) == 0 {
		t.Fatalf("Funcs = %d, %v", n, err)
	}
}
`},
}

// genModule writes the module and its pipeline into dir.
func genModule(b *testing.B, dir string) {
	files := map[string]string{"go.mod": "module example.com/gen\n\ngo 1.22\n", ".pipeline.yml": goPipeline}
	for name, src := range packages {
		files[name+"/"+name+".go"] = src[0]
		files[name+"/"+name+"_test.go"] = src[1]
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// stageSeconds runs the module's pipeline with runnel run and returns the
// test stage's duration.
func stageSeconds(b *testing.B, bin, dir, cache string) float64 {
	summary := filepath.Join(b.TempDir(), "summary.json")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-C", dir, "--pull", "never", "--cache-dir", cache, "--summary-json", summary)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("runnel run: %v\n%s", err, out)
	}
	var res struct {
		Stages []struct {
			ID       string    `json:"id"`
			Started  time.Time `json:"started_at"`
			Finished time.Time `json:"finished_at"`
		} `json:"stages"`
	}
	raw, err := os.ReadFile(summary)
	if err != nil || json.Unmarshal(raw, &res) != nil || len(res.Stages) != 1 {
		b.Fatalf("summary: %v %s", err, raw)
	}
	if !strings.Contains(string(out), "runnel: cache go-") {
		b.Fatalf("no cache line in the log:\n%s", out)
	}
	return res.Stages[0].Finished.Sub(res.Stages[0].Started).Seconds()
}

// BenchmarkGoTestStage runs a generated module's test stage with runnel
// run on Docker: cold (an empty cache directory: the standard library is
// compiled, the tests run), then cached (the second run restores GOCACHE
// and GOMODCACHE), once per iteration. Metrics: the medians in seconds
// and cached/cold (the goal is at most 0.35).
//
//	scripts/test-images.sh
//	go test ./bench/artifacts -run '^$' -bench GoTestStage -benchtime 3x -timeout 2h
func BenchmarkGoTestStage(b *testing.B) {
	if err := exec.Command("docker", "image", "inspect", "runnel-test/go:latest").Run(); err != nil {
		b.Skipf("needs Docker and runnel-test/go:latest (scripts/test-images.sh): %v", err)
	}
	bin := filepath.Join(b.TempDir(), "runnel")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/runnel").CombinedOutput(); err != nil {
		b.Fatalf("build runnel: %v\n%s", err, out)
	}
	dir := b.TempDir()
	genModule(b, dir)
	var cold, cached []float64
	for b.Loop() {
		cache := b.TempDir()
		cold = append(cold, stageSeconds(b, bin, dir, cache))
		cached = append(cached, stageSeconds(b, bin, dir, cache))
	}
	mc, mw := medianF(cold), medianF(cached)
	b.ReportMetric(mc, "cold-s")
	b.ReportMetric(mw, "cached-s")
	b.ReportMetric(mw/mc, "cached/cold")
	b.Logf("cold %v, cached %v", cold, cached)
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
