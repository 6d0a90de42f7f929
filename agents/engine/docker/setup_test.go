package docker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/runnel-ci/runnel/agents/engine/enginetest"
)

// TestSetupImageWithoutCmd fills the workspace through a stage image
// that has no default command (runnel-test/go is made with docker import).
func TestSetupImageWithoutCmd(t *testing.T) {
	cli := testClient(t)
	ii, _, err := cli.ImageInspectWithRaw(context.Background(), goImage)
	if err != nil {
		t.Fatalf("inspect %s: %v", goImage, err)
	}
	if ii.Config != nil && (len(ii.Config.Cmd) > 0 || len(ii.Config.Entrypoint) > 0) {
		t.Fatalf("%s has Cmd %v, Entrypoint %v; the test needs an image without either", goImage, ii.Config.Cmd, ii.Config.Entrypoint)
	}
	e := testEngine(t, cli, "")
	c := contractConfig(t, cli, e)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("from the source"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := enginetest.NewSpec(t, goImage, nil, src)
	enginetest.SetUp(t, c, s)
	code, out, err := enginetest.RunStep(context.Background(), t, c, s, "cat hello.txt", nil)
	if err != nil || code != 0 || out != "from the source" {
		t.Errorf("got %d, %v, %q; want 0, nil, %q", code, err, out, "from the source")
	}
}
