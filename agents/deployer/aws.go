package deployer

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/pipeline"
)

// Variables the AWS providers read their credentials from: the stage's
// secrets that arrive as them (secrets: [AWS_ACCESS_KEY_ID, ...] or
// {name: X, env: AWS_ACCESS_KEY_ID}).
const (
	awsKeyVar     = "AWS_ACCESS_KEY_ID"
	awsSecretVar  = "AWS_SECRET_ACCESS_KEY"
	awsSessionVar = "AWS_SESSION_TOKEN"
)

// awsConfig returns the AWS configuration of an AWS provider's deploy
// block. The region is deploy.region or AWS_REGION of the stage's env.
// Credentials come only from the stage's secrets, as the variables
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (optional)
// AWS_SESSION_TOKEN: not from the stage's env, which is in the
// repository, and not from the agent's own environment or files, so a
// pipeline deploys only with what the server gave its stage.
func awsConfig(pd *pipeline.Deploy, spec *engine.Spec) (aws.Config, error) {
	region := pd.Region
	if region == "" {
		region = spec.Stage.Env["AWS_REGION"]
	}
	if region == "" {
		return aws.Config{}, errors.New("no region (deploy.region or AWS_REGION in the stage env)")
	}
	sec := map[string]string{}
	for _, s := range spec.Secrets {
		if s.Env != "" && s.File == "" {
			sec[s.Env] = s.Value
		}
	}
	key, secret := sec[awsKeyVar], sec[awsSecretVar]
	if key == "" || secret == "" {
		return aws.Config{}, fmt.Errorf("no credentials: the stage needs the secrets %s and %s (secrets: [%[1]s, %[2]s], or renamed with env:)",
			awsKeyVar, awsSecretVar)
	}
	return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(key, secret, sec[awsSessionVar])}, nil
}

// endpoint returns the deploy block's endpoint of service (deploy.endpoints),
// nil for AWS's own.
func endpoint(pd *pipeline.Deploy, service string) *string {
	if ep := pd.Endpoints[service]; ep != "" {
		return aws.String(ep)
	}
	return nil
}

// awsProvider makes the AWS provider name of a deploy block from its
// settings t (the block's key is key): build gets them and the stage's
// AWS configuration (awsConfig); errors name the provider.
func awsProvider[T any](name, key string, t *T, pd *pipeline.Deploy, spec *engine.Spec, build func(*T, aws.Config) (deploy.Provider, error)) (deploy.Provider, error) {
	if t == nil {
		return nil, fmt.Errorf("provider %s: no %s settings", name, key)
	}
	cfg, err := awsConfig(pd, spec)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	p, err := build(t, cfg)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	return p, nil
}
