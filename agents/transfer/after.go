package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
)

// After implements stage.Transfer: it uploads the stage's artifacts when
// their when matches status, and, after a success, saves every cache whose
// key was not an exact hit. A failed artifact upload is an error; a cache
// that cannot be saved is only noted.
func (t *Transfer) After(ctx context.Context, s *engine.Spec, status rules.Status, out io.Writer) error {
	r := t.take(s)
	st := s.Stage
	if st.Artifacts == nil && len(st.Cache) == 0 {
		return nil
	}
	if status == rules.Canceled {
		logf(out, "stage canceled: nothing uploaded")
		return nil
	}
	if t.Files == nil {
		return errors.New("this engine cannot move files out of a workspace")
	}
	if a := st.Artifacts; a != nil && uploads(a.When, status) {
		if err := t.uploadArtifacts(ctx, s, a, out); err != nil {
			return err
		}
	}
	if status != rules.Success || r == nil {
		return nil
	}
	for i, c := range st.Cache {
		t.saveCache(ctx, s, c, r.keys[i], r.exact[i], out)
	}
	return nil
}

func uploads(when pipeline.RunOn, status rules.Status) bool {
	switch when {
	case pipeline.RunOnAlways:
		return true
	case pipeline.RunOnFailure:
		return status.Failed()
	}
	return status == rules.Success
}

func (t *Transfer) maxArchive() int64 {
	if t.MaxArchive > 0 {
		return t.MaxArchive
	}
	return DefaultMaxArchive
}

func (t *Transfer) uploadArtifacts(ctx context.Context, s *engine.Spec, a *pipeline.Artifacts, out io.Writer) error {
	if t.Remote == nil {
		logf(out, "artifacts: not uploaded: no artifact store")
		return nil
	}
	arch, err := makeArchive(ctx, t.Files, s, a.Paths, t.TempDir, t.maxArchive())
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer arch.close()
	for _, p := range arch.missing {
		logf(out, "artifacts: %s matches nothing", p)
	}
	if arch.skipped > 0 {
		logf(out, "artifacts: %d sockets, devices or FIFOs left out", arch.skipped)
	}
	if arch.files == 0 {
		logf(out, "artifacts: no files; nothing uploaded")
		return nil
	}
	if err := t.Remote.Put(ctx, KindArtifact, s.Stage.ID, arch.f, arch.size, arch.sum); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("artifacts: upload: %w", err)
	}
	logf(out, "artifacts: uploaded %s, %s (sha256 %s)", count(arch.files, "file"), size(arch.size), short(arch.sum))
	return nil
}

func (t *Transfer) saveCache(ctx context.Context, s *engine.Spec, c pipeline.Cache, key string, exact bool, out io.Writer) {
	switch {
	case key == "":
		return // its key could not be computed; Before said why
	case exact:
		logf(out, "cache %s: hit; not saved again", key)
		return
	case t.Remote == nil:
		logf(out, "cache %s: not saved: no artifact store", key)
		return
	case !t.Remote.CacheWritable():
		logf(out, "cache %s: not saved: %v (a pull request from a fork)", key, ErrReadOnly)
		return
	}
	arch, err := makeArchive(ctx, t.Files, s, c.Paths, t.TempDir, t.maxArchive())
	if err != nil {
		logf(out, "cache %s: not saved: %v", key, err)
		return
	}
	defer arch.close()
	if arch.files == 0 {
		logf(out, "cache %s: not saved: %v match nothing", key, c.Paths)
		return
	}
	switch err := t.Remote.Put(ctx, KindCache, key, arch.f, arch.size, arch.sum); {
	case errors.Is(err, ErrExists):
		logf(out, "cache %s: saved already by another stage", key)
		return
	case err != nil:
		logf(out, "cache %s: not saved: %v", key, err)
		return
	}
	logf(out, "cache %s: saved %s, %s", key, count(arch.files, "file"), size(arch.size))
}
