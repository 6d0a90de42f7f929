package ecsservice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Service tags by which the attempts of one release fence each other:
// the release (a digest of its ID: tag values allow few characters) and
// the highest attempt that drove the service.
const (
	TagRelease = "runnel.deploy.release"
	TagAttempt = "runnel.deploy.attempt"
)

// ErrSuperseded ends a release whose service a later attempt of the same
// release drives (the stale attempt of a re-delivered stage: an agent
// frozen or cut off, not dead). It neither updates nor stops anything.
var ErrSuperseded = errors.New("superseded: a later attempt of this release drives the service")

// fence returns ErrSuperseded when the service's tags name a later
// attempt of the release; with claim, it then tags the service with the
// release's attempt. ECS has no conditional writes: a stale attempt that
// reads the tags just before the later attempt writes them is not
// stopped, as with the ecs provider's check of its task set.
func (r *release) fence(ctx context.Context, claim bool) error {
	if r.rel.ID == "" || r.rel.Attempt == 0 {
		return nil
	}
	out, err := r.p.c.ECS.ListTagsForResource(ctx, &awsecs.ListTagsForResourceInput{ResourceArn: aws.String(r.svcARN)})
	if err != nil {
		return fmt.Errorf("list tags of %s: %w", r.svcARN, err)
	}
	release := releaseDigest(r.rel.ID)
	tags := map[string]string{}
	for _, t := range out.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if n, _ := strconv.Atoi(tags[TagAttempt]); tags[TagRelease] == release && n > r.rel.Attempt {
		return fmt.Errorf("attempt %d of %s, service driven by attempt %d: %w", r.rel.Attempt, r.rel.ID, n, ErrSuperseded)
	}
	if !claim {
		return nil
	}
	_, err = r.p.c.ECS.TagResource(ctx, &awsecs.TagResourceInput{ResourceArn: aws.String(r.svcARN), Tags: []ecstypes.Tag{
		{Key: aws.String(TagRelease), Value: aws.String(release)}, {Key: aws.String(TagAttempt), Value: aws.String(strconv.Itoa(r.rel.Attempt))},
	}})
	if err != nil {
		return fmt.Errorf("tag %s: %w", r.svcARN, err)
	}
	return nil
}

func releaseDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}
