package ecstask_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecstask"
	"github.com/runnel-ci/runnel/internal/awsfake"
)

// blueDef is a serving task definition of two containers, with settings
// beyond the containers that the copy has to keep.
const blueDef = `{"family": "web", "pidMode": "task", "ipcMode": "task", "cpu": "256", "memory": "512",
	"enableFaultInjection": true,
	"containerDefinitions": [
		{"name": "web", "image": "web:v1", "command": ["serve"],
		 "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "old"}],
		 "dockerLabels": {"runnel.deploy.version": "v1", "runnel.deploy.id": "old", "team": "x"}},
		{"name": "proxy", "image": "envoy:1"}],
	"tags": [{"key": "owner", "value": "ops"}]}`

// TestRegister: the copy runs the release's image, command and merged
// environment in the release's container, with its labels set or
// removed, and keeps the other container, the task-level settings and
// the tags of the serving task definition.
func TestRegister(t *testing.T) {
	s := awsfake.New(t)
	f := awsfake.NewECS(s)
	if _, err := f.AddService("c", "web", "ECS", blueDef, ""); err != nil {
		t.Fatal(err)
	}
	c := awsecs.NewFromConfig(s.Config("us-east-1", "AKIDTEST"))
	ctx := context.Background()
	blue, err := ecstask.Describe(ctx, c, "web")
	if err != nil {
		t.Fatal(err)
	}
	rel := deploy.Release{App: "web", Version: "v2", Image: "web:v2", Command: []string{"serve", "-v"}, Env: map[string]string{"B": "new", "C": "3"}}
	td, name, err := ecstask.Register(ctx, c, blue, "", rel, map[string]string{"runnel.deploy.id": ""})
	if err != nil || name != "web" {
		t.Fatalf("Register: %q, %v", name, err)
	}
	green, err := ecstask.Describe(ctx, c, aws.ToString(td.TaskDefinitionArn))
	if err != nil {
		t.Fatal(err)
	}
	g := green.TaskDefinition
	if g.Revision != 2 || g.PidMode != ecstypes.PidModeTask || g.IpcMode != ecstypes.IpcModeTask ||
		!aws.ToBool(g.EnableFaultInjection) || aws.ToString(g.Cpu) != "256" || fmt.Sprint(tags(green.Tags)) != "map[owner:ops]" {
		t.Errorf("task definition revision %d pidMode %q ipcMode %q fault injection %v cpu %s tags %v: want blue's settings and tags kept",
			g.Revision, g.PidMode, g.IpcMode, aws.ToBool(g.EnableFaultInjection), aws.ToString(g.Cpu), tags(green.Tags))
	}
	web, proxy := g.ContainerDefinitions[0], g.ContainerDefinitions[1]
	if aws.ToString(web.Image) != "web:v2" || fmt.Sprint(web.Command) != "[serve -v]" ||
		fmt.Sprint(env(web.Environment)) != "[A=1 B=new C=3]" || fmt.Sprint(web.DockerLabels) != "map[runnel.deploy.version:v2 team:x]" {
		t.Errorf("container web: image %s command %v env %v labels %v, want the release's",
			aws.ToString(web.Image), web.Command, env(web.Environment), web.DockerLabels)
	}
	if aws.ToString(proxy.Image) != "envoy:1" {
		t.Errorf("container proxy runs %s, want envoy:1", aws.ToString(proxy.Image))
	}
	if l := blue.TaskDefinition.ContainerDefinitions[0].DockerLabels; l["runnel.deploy.version"] != "v1" {
		t.Errorf("blue's labels changed: %v", l)
	}
}

// TestContainer: the configured container, else the only one, else the
// one named after the app, else the one labelled with a version.
func TestContainer(t *testing.T) {
	c := func(name string, labels map[string]string) ecstypes.ContainerDefinition {
		return ecstypes.ContainerDefinition{Name: aws.String(name), DockerLabels: labels}
	}
	one := &ecstypes.TaskDefinition{ContainerDefinitions: []ecstypes.ContainerDefinition{c("only", nil)}}
	two := &ecstypes.TaskDefinition{ContainerDefinitions: []ecstypes.ContainerDefinition{
		c("proxy", nil), c("web", map[string]string{ecstask.LabelVersion: "v1"})}}
	for _, tt := range []struct {
		td              *ecstypes.TaskDefinition
		name, app, want string
	}{
		{one, "", "web", "only"}, {one, "only", "", "only"}, {one, "web", "", "error"},
		{two, "proxy", "web", "proxy"}, {two, "", "web", "web"}, {two, "", "", "web"}, {two, "", "api", "error"},
		{&ecstypes.TaskDefinition{ContainerDefinitions: []ecstypes.ContainerDefinition{c("a", nil), c("b", nil)}}, "", "", ""},
	} {
		got, err := ecstask.Container(tt.td, tt.name, tt.app)
		name := "error"
		if err == nil {
			name = aws.ToString(got.Name)
		}
		if name != tt.want {
			t.Errorf("Container(%q, %q) = %q, want %q", tt.name, tt.app, name, tt.want)
		}
	}
}

func tags(ts []ecstypes.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func env(kvs []ecstypes.KeyValuePair) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, aws.ToString(kv.Name)+"="+aws.ToString(kv.Value))
	}
	return out
}
