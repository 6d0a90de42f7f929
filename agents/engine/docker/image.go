package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
	"io"

	"github.com/runnel-ci/runnel/agents/engine"
)

// pullTimeout bounds one pull, which is shared by every concurrent caller
// and so does not follow any one caller's context.
const pullTimeout = 15 * time.Minute

// ensureImage makes ref present according to the pull policy.
func (e *Engine) ensureImage(ctx context.Context, ref string) error {
	if e.policy != engine.PullAlways {
		_, err := e.cli.ImageInspect(ctx, ref)
		if err == nil {
			return nil
		}
		if !errdefs.IsNotFound(err) {
			return fmt.Errorf("inspect image %s: %w", ref, err)
		}
		if e.policy == engine.PullNever {
			return fmt.Errorf("image %s (pull policy never): %w", ref, engine.ErrImageNotFound)
		}
	}
	return e.pull(ctx, ref)
}

// pull fetches ref once for all concurrent callers.
func (e *Engine) pull(ctx context.Context, ref string) error {
	ch := e.pulls.DoChan(ref, func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pullTimeout)
		defer cancel()
		e.log.Info("pulling image", "image", ref)
		rc, err := e.cli.ImagePull(pctx, ref, image.PullOptions{})
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		// The pull's outcome is at the end of its progress stream.
		return nil, jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
	})
	select {
	case <-ctx.Done():
		return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
	case r := <-ch:
		if r.Err == nil {
			return nil
		}
		// The contract: a missing image whose pull failed, for whatever
		// reason (no registry, no such image, no access), is not found.
		return fmt.Errorf("pull image %s: %w: %w", ref, engine.ErrImageNotFound, r.Err)
	}
}
