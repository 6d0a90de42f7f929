package awsfake

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ECSTarget is the X-Amz-Target prefix of Amazon ECS operations.
const ECSTarget = "AmazonEC2ContainerServiceV20141113."

// Region and account of the ARNs the ECS fake makes.
const (
	ecsRegion  = "us-east-1"
	ecsAccount = "123456789012"
)

// ECS is a stateful fake of Amazon ECS services that ECS deploys
// (deploymentController ECS) with the BLUE_GREEN, CANARY or LINEAR
// strategy: task definitions, services, service revisions and service
// deployments (see ecs_api.go for the operations) and service tags. UpdateService with a
// new task definition starts a service deployment, which passes through
// the lifecycle stages (RECONCILE_SERVICE … CLEAN_UP) on the Server's
// clock, shifting production traffic as its strategy says, and ends
// SUCCESSFUL; StopServiceDeployment (ROLLBACK) or a failing lifecycle
// hook (FailHook) rolls it back (ROLLBACK_IN_PROGRESS, then
// ROLLBACK_SUCCESSFUL, the service on its previous revision again).
//
// Simplifications: one region and account; no tasks, load balancers or
// capacity; an UpdateService while a deployment is in progress is
// refused (ECS would supersede it); ROLLING deployments are not
// implemented.
//
// Fields are set before the first request; state is read and changed
// under the Server's lock (its methods take it).
type ECS struct {
	// Minute is how long one minute of a strategy's bake times lasts on
	// the Server's clock (default a minute; tests shorten it).
	Minute time.Duration
	// StageTime is how long each lifecycle stage without a bake time
	// lasts (default 10 s).
	StageTime time.Duration

	s           *Server
	taskDefs    map[string]*ecsTaskDef // by ARN
	families    map[string]int         // latest revision
	services    map[string]*ecsService // by cluster/name
	revisions   map[string]*ecsRevision
	deployments map[string]*ecsDeployment
	hooks       map[string]ecsHookFailure // by image
	seq         int
}

type ecsTaskDef struct {
	arn, family string
	revision    int
	doc         map[string]any // as registered, with the fields ECS adds
	tags        json.RawMessage
	registered  time.Time
}

type ecsService struct {
	arn, name, cluster string
	controller         string
	config             json.RawMessage // deploymentConfiguration
	revision           *ecsRevision    // before the latest deployment
	latest             *ecsDeployment
	created            time.Time
	tags               map[string]string
}

type ecsRevision struct {
	arn, service, cluster, taskDef string
	created                        time.Time
}

// ecsHookFailure makes deployments of an image fail at a lifecycle stage
// (none: only their rollbacks fail, if rollbackFails).
type ecsHookFailure struct {
	stage, reason string
	rollbackFails bool
}

// NewECS registers the ECS operations on s and returns their state.
func NewECS(s *Server) *ECS {
	f := &ECS{s: s, taskDefs: map[string]*ecsTaskDef{}, families: map[string]int{}, services: map[string]*ecsService{},
		revisions: map[string]*ecsRevision{}, deployments: map[string]*ecsDeployment{}, hooks: map[string]ecsHookFailure{}}
	for op, h := range map[string]Handler{
		"RegisterTaskDefinition":     f.registerTaskDefinition,
		"DescribeTaskDefinition":     f.describeTaskDefinition,
		"DescribeServices":           f.describeServices,
		"UpdateService":              f.updateService,
		"DescribeServiceRevisions":   f.describeServiceRevisions,
		"DescribeServiceDeployments": f.describeServiceDeployments,
		"ListServiceDeployments":     f.listServiceDeployments,
		"StopServiceDeployment":      f.stopServiceDeployment,
		"TagResource":                f.tagResource,
		"ListTagsForResource":        f.listTagsForResource,
	} {
		s.Handle(ECSTarget+op, h)
	}
	return f
}

// AddService creates service name in cluster with deployment controller
// controller ("ECS" or "EXTERNAL"), running the task definition taskDef
// (a RegisterTaskDefinition request document), with the deployment
// configuration config (JSON; "" is {"strategy": "BLUE_GREEN"}). It
// returns the service's ARN.
func (f *ECS) AddService(cluster, name, controller, taskDef, config string) (string, error) {
	var arn string
	var err error
	f.s.Do(func() {
		var td *ecsTaskDef
		if td, err = f.register([]byte(taskDef), f.s.now()); err != nil {
			return
		}
		if config == "" {
			config = `{"strategy":"BLUE_GREEN"}`
		}
		svc := &ecsService{arn: fmt.Sprintf("arn:aws:ecs:%s:%s:service/%s/%s", ecsRegion, ecsAccount, cluster, name), name: name, cluster: cluster,
			controller: controller, config: json.RawMessage(config), created: f.s.now(), tags: map[string]string{}}
		svc.revision = f.newRevision(svc, td.arn, f.s.now())
		f.services[cluster+"/"+name] = svc
		arn = svc.arn
	})
	return arn, err
}

// FailHook makes every later service deployment to a task definition
// that runs image fail at the end of lifecycle stage (e.g.
// "POST_PRODUCTION_TRAFFIC_SHIFT"), as a lifecycle hook answering FAILED
// would, with reason.
func (f *ECS) FailHook(image, stage, reason string) {
	f.s.Do(func() {
		hf := f.hooks[image]
		hf.stage, hf.reason = stage, reason
		f.hooks[image] = hf
	})
}

// FailRollback makes the rollbacks of later service deployments of image
// end ROLLBACK_FAILED, the service left on the new revision.
func (f *ECS) FailRollback(image string) {
	f.s.Do(func() {
		hf := f.hooks[image]
		hf.rollbackFails = true
		f.hooks[image] = hf
	})
}

// DeploymentStatus returns the status and lifecycle stage of a service
// deployment now ("" when there is none).
func (f *ECS) DeploymentStatus(arn string) (status, stage string) {
	f.s.Do(func() {
		if d := f.deployments[arn]; d != nil {
			seg := d.at(f.s.now())
			status, stage = seg.status, seg.stage
		}
	})
	return status, stage
}

// ServingImage returns the image of the first container of the task
// definition service name of cluster runs now.
func (f *ECS) ServingImage(cluster, name string) string {
	var image string
	f.s.Do(func() { image = f.servingImage(cluster, name) })
	return image
}

// WaitServing waits until service name of cluster runs image (checked
// after every call to the Server), or ctx ends.
func (f *ECS) WaitServing(ctx context.Context, cluster, name, image string) error {
	return f.s.Wait(ctx, func() bool { return f.servingImage(cluster, name) == image })
}

// servingImage is ServingImage under the Server's lock.
func (f *ECS) servingImage(cluster, name string) string {
	svc := f.services[cluster+"/"+name]
	if svc == nil {
		return ""
	}
	return f.taskDefs[svc.serving(f.s.now()).taskDef].image()
}

func (f *ECS) newRevision(svc *ecsService, taskDef string, now time.Time) *ecsRevision {
	f.seq++
	r := &ecsRevision{arn: fmt.Sprintf("arn:aws:ecs:%s:%s:service-revision/%s/%s/%d", ecsRegion, ecsAccount, svc.cluster, svc.name, 1000+f.seq),
		service: svc.arn, cluster: svc.cluster, taskDef: taskDef, created: now}
	f.revisions[r.arn] = r
	return r
}

// serving is the revision the service runs at now: its latest
// deployment's target unless that one rolled back.
func (svc *ecsService) serving(now time.Time) *ecsRevision {
	d := svc.latest
	if d == nil {
		return svc.revision
	}
	switch d.at(now).status {
	case "ROLLBACK_SUCCESSFUL", "STOPPED":
		return d.source
	}
	return d.target
}

// image is the image of the task definition's first container.
func (td *ecsTaskDef) image() string {
	if td == nil {
		return ""
	}
	cs, _ := td.doc["containerDefinitions"].([]any)
	if len(cs) == 0 {
		return ""
	}
	c, _ := cs[0].(map[string]any)
	image, _ := c["image"].(string)
	return image
}

// images are the images of every container of the task definition.
func (td *ecsTaskDef) images() []string {
	var out []string
	cs, _ := td.doc["containerDefinitions"].([]any)
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok {
			if image, ok := m["image"].(string); ok {
				out = append(out, image)
			}
		}
	}
	return out
}
