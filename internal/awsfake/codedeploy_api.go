package awsfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

var deploymentIDRE = regexp.MustCompile(`^d-[A-Z0-9]{9}$`)

func (c *CodeDeploy) handlers() map[string]Handler {
	return map[string]Handler{
		"CreateDeployment":       c.createDeployment,
		"GetDeployment":          c.getDeployment,
		"BatchGetDeployments":    c.batchGetDeployments,
		"ListDeployments":        c.listDeployments,
		"StopDeployment":         c.stopDeployment,
		"ListDeploymentTargets":  c.listDeploymentTargets,
		"GetDeploymentTarget":    c.getDeploymentTarget,
		"GetDeploymentGroup":     c.getDeploymentGroup,
		"GetDeploymentConfig":    c.getDeploymentConfig,
		"CreateDeploymentConfig": c.createDeploymentConfig,
	}
}

type autoRollbackJSON struct {
	Enabled bool     `json:"enabled"`
	Events  []string `json:"events,omitempty"`
}

type appSpecRevision struct {
	RevisionType   string `json:"revisionType"`
	AppSpecContent *struct {
		Content string `json:"content"`
		Sha256  string `json:"sha256"`
	} `json:"appSpecContent"`
}

// appSpec is the part of an ECS AppSpec the fake checks.
type appSpec struct {
	Version   any `json:"version"`
	Resources []map[string]struct {
		Type       string `json:"Type"`
		Properties struct {
			TaskDefinition   string `json:"TaskDefinition"`
			LoadBalancerInfo struct {
				ContainerName string `json:"ContainerName"`
				ContainerPort int    `json:"ContainerPort"`
			} `json:"LoadBalancerInfo"`
		} `json:"Properties"`
	} `json:"Resources"`
}

// taskDefinition checks an inline ECS AppSpec and returns its task
// definition.
func taskDefinition(rev *appSpecRevision) (string, error) {
	if rev == nil {
		return "", Errorf("RevisionRequiredException", "The revision ID was not specified.")
	}
	if rev.RevisionType != "AppSpecContent" || rev.AppSpecContent == nil {
		return "", Errorf("InvalidRevisionException", "ECS deployments need revisionType AppSpecContent, got %q", rev.RevisionType)
	}
	content := rev.AppSpecContent.Content
	if sum := sha256.Sum256([]byte(content)); rev.AppSpecContent.Sha256 != "" && rev.AppSpecContent.Sha256 != hex.EncodeToString(sum[:]) {
		return "", Errorf("InvalidRevisionException", "The AppSpec content does not match its sha256.")
	}
	var as appSpec
	if err := json.Unmarshal([]byte(content), &as); err != nil {
		return "", Errorf("InvalidRevisionException", "AppSpec is not valid JSON (the fake reads JSON only): %v", err)
	}
	if fmt.Sprint(as.Version) != "0" && fmt.Sprint(as.Version) != "0.0" {
		return "", Errorf("InvalidRevisionException", "AppSpec version %v, want 0.0", as.Version)
	}
	if len(as.Resources) != 1 || len(as.Resources[0]) != 1 {
		return "", Errorf("InvalidRevisionException", "an ECS AppSpec has exactly one resource")
	}
	for _, r := range as.Resources[0] {
		p := r.Properties
		if r.Type != "AWS::ECS::Service" || p.TaskDefinition == "" || p.LoadBalancerInfo.ContainerName == "" || p.LoadBalancerInfo.ContainerPort == 0 {
			return "", Errorf("InvalidRevisionException", "the resource must be an AWS::ECS::Service with TaskDefinition and LoadBalancerInfo ContainerName and ContainerPort")
		}
		return p.TaskDefinition, nil
	}
	return "", nil
}

func (c *CodeDeploy) createDeployment(r *Request) (any, error) {
	var in struct {
		App          string            `json:"applicationName"`
		Group        string            `json:"deploymentGroupName"`
		Config       string            `json:"deploymentConfigName"`
		Description  string            `json:"description"`
		Revision     *appSpecRevision  `json:"revision"`
		AutoRollback *autoRollbackJSON `json:"autoRollbackConfiguration"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	g, err := c.group(in.App, in.Group)
	if err != nil {
		return nil, err
	}
	if in.Config == "" {
		in.Config = g.Config
	}
	routing, err := c.config(in.Config)
	if err != nil {
		return nil, err
	}
	td, err := taskDefinition(in.Revision)
	if err != nil {
		return nil, err
	}
	for _, d := range c.deployments {
		if d.App == g.App && d.Group == g.Name && !terminal(d.Status) {
			return nil, Errorf("DeploymentLimitExceededException", "The Deployment Group '%s' already has an active Deployment '%s'", g.Name, d.ID)
		}
	}
	d := &Deployment{App: g.App, Group: g.Name, Config: in.Config, Description: in.Description, Creator: "user",
		AppSpec: in.Revision.AppSpecContent.Content, TaskDefinition: td, AutoRollback: g.AutoRollback, fail: c.fail}
	if in.AutoRollback != nil {
		d.AutoRollback = nil
		if in.AutoRollback.Enabled {
			d.AutoRollback = in.AutoRollback.Events
		}
	}
	c.fail = nil
	c.start(d, r.Now, routing)
	return map[string]string{"deploymentId": d.ID}, nil
}

func (c *CodeDeploy) group(app, name string) (*DeploymentGroup, error) {
	if app == "" {
		return nil, Errorf("ApplicationNameRequiredException", "The minimum number of required application names was not specified.")
	}
	if name == "" {
		return nil, Errorf("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
	}
	g, ok := c.groups[app+"/"+name]
	if !ok {
		if !slices.ContainsFunc(slices.Collect(maps.Values(c.groups)), func(g *DeploymentGroup) bool { return g.App == app }) {
			return nil, Errorf("ApplicationDoesNotExistException", "No application found for name: %s", app)
		}
		return nil, Errorf("DeploymentGroupDoesNotExistException", "No Deployment Group found for name: %s", name)
	}
	return g, nil
}

func (c *CodeDeploy) config(name string) (TrafficRouting, error) {
	if r, ok := ecsConfigs[name]; ok {
		return r, nil
	}
	if r, ok := c.configs[name]; ok {
		return r, nil
	}
	return TrafficRouting{}, Errorf("DeploymentConfigDoesNotExistException", "No deployment configuration found for name: %s", name)
}

func (c *CodeDeploy) deployment(id string) (*Deployment, error) {
	switch {
	case id == "":
		return nil, Errorf("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
	case !deploymentIDRE.MatchString(id):
		return nil, Errorf("InvalidDeploymentIdException", "Specified DeploymentId is not in the valid format: %s", id)
	}
	d, ok := c.deployments[id]
	if !ok {
		return nil, Errorf("DeploymentDoesNotExistException", "The deployment %s could not be found.", id)
	}
	return d, nil
}

// named returns the deployment a request's deploymentId names.
func (c *CodeDeploy) named(r *Request) (*Deployment, error) {
	var in struct {
		ID string `json:"deploymentId"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return c.deployment(in.ID)
}

func (c *CodeDeploy) getDeployment(r *Request) (any, error) {
	d, err := c.named(r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"deploymentInfo": d.info()}, nil
}

func (c *CodeDeploy) batchGetDeployments(r *Request) (any, error) {
	var in struct {
		IDs []string `json:"deploymentIds"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.IDs) > 25 {
		return nil, Errorf("BatchLimitExceededException", "The maximum number of names or IDs allowed for this request (25) was exceeded.")
	}
	infos := []any{}
	for _, id := range in.IDs {
		d, err := c.deployment(id)
		if err != nil {
			return nil, err
		}
		infos = append(infos, d.info())
	}
	return map[string]any{"deploymentsInfo": infos}, nil
}

// listDeployments lists a group's deployments, newest first.
func (c *CodeDeploy) listDeployments(r *Request) (any, error) {
	var in struct {
		App      string   `json:"applicationName"`
		Group    string   `json:"deploymentGroupName"`
		Statuses []string `json:"includeOnlyStatuses"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.group(in.App, in.Group); err != nil {
		return nil, err
	}
	ids := []string{}
	for _, id := range slices.Backward(c.order) {
		d := c.deployments[id]
		if d.App == in.App && d.Group == in.Group && (len(in.Statuses) == 0 || slices.Contains(in.Statuses, d.Status)) {
			ids = append(ids, id)
		}
	}
	return map[string]any{"deployments": ids}, nil
}

func (c *CodeDeploy) stopDeployment(r *Request) (any, error) {
	var in struct {
		ID       string `json:"deploymentId"`
		Rollback *bool  `json:"autoRollbackEnabled"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	d, err := c.deployment(in.ID)
	if err != nil {
		return nil, err
	}
	if terminal(d.Status) {
		return nil, Errorf("DeploymentAlreadyCompletedException", "The deployment %s is already completed.", d.ID)
	}
	if in.Rollback != nil {
		d.AutoRollback = slices.DeleteFunc(slices.Clone(d.AutoRollback), func(e string) bool { return e == "DEPLOYMENT_STOP_ON_REQUEST" })
		if *in.Rollback {
			d.AutoRollback = append(d.AutoRollback, "DEPLOYMENT_STOP_ON_REQUEST")
		}
	}
	c.finish(d, r.Now, "Stopped", "MANUAL_STOP", "The deployment was stopped by the user.", "DEPLOYMENT_STOP_ON_REQUEST")
	return map[string]string{"status": "Pending", "statusMessage": "Stopping Pending. Stopping to deploy."}, nil
}

func (c *CodeDeploy) listDeploymentTargets(r *Request) (any, error) {
	d, err := c.named(r)
	if err != nil {
		return nil, err
	}
	g := c.groups[d.App+"/"+d.Group]
	return map[string]any{"targetIds": []string{g.Cluster + ":" + g.Service}}, nil
}

func (c *CodeDeploy) getDeploymentTarget(r *Request) (any, error) {
	var in struct {
		ID     string `json:"deploymentId"`
		Target string `json:"targetId"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	d, err := c.deployment(in.ID)
	if err != nil {
		return nil, err
	}
	g := c.groups[d.App+"/"+d.Group]
	if in.Target != g.Cluster+":"+g.Service {
		return nil, Errorf("DeploymentTargetDoesNotExistException", "The provided target ID does not belong to the deployment %s.", d.ID)
	}
	return map[string]any{"deploymentTarget": map[string]any{"deploymentTargetType": "ECSTarget", "ecsTarget": d.target(g, r.Now)}}, nil
}

func (c *CodeDeploy) getDeploymentGroup(r *Request) (any, error) {
	var in struct {
		App   string `json:"applicationName"`
		Group string `json:"deploymentGroupName"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	g, err := c.group(in.App, in.Group)
	if err != nil {
		return nil, err
	}
	return map[string]any{"deploymentGroupInfo": map[string]any{
		"applicationName": g.App, "deploymentGroupName": g.Name, "deploymentConfigName": g.Config, "computePlatform": "ECS",
		"ecsServices":               []any{map[string]string{"clusterName": g.Cluster, "serviceName": g.Service}},
		"deploymentStyle":           map[string]string{"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
		"autoRollbackConfiguration": autoRollbackJSON{Enabled: len(g.AutoRollback) > 0, Events: g.AutoRollback},
	}}, nil
}

func (c *CodeDeploy) getDeploymentConfig(r *Request) (any, error) {
	var in struct {
		Name string `json:"deploymentConfigName"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	routing, err := c.config(in.Name)
	if err != nil {
		return nil, err
	}
	return map[string]any{"deploymentConfigInfo": map[string]any{
		"deploymentConfigName": in.Name, "computePlatform": "ECS", "trafficRoutingConfig": routing.json(),
	}}, nil
}

func (c *CodeDeploy) createDeploymentConfig(r *Request) (any, error) {
	var in struct {
		Name     string `json:"deploymentConfigName"`
		Platform string `json:"computePlatform"`
		Routing  struct {
			Type   string `json:"type"`
			Canary *struct {
				Percent  int `json:"canaryPercentage"`
				Interval int `json:"canaryInterval"`
			} `json:"timeBasedCanary"`
			Linear *struct {
				Percent  int `json:"linearPercentage"`
				Interval int `json:"linearInterval"`
			} `json:"timeBasedLinear"`
		} `json:"trafficRoutingConfig"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if _, err := c.config(in.Name); err == nil {
		return nil, Errorf("DeploymentConfigAlreadyExistsException", "A deployment configuration with the name %s already exists.", in.Name)
	}
	tr := TrafficRouting{Type: in.Routing.Type}
	switch {
	case in.Name == "":
		return nil, Errorf("DeploymentConfigNameRequiredException", "The deployment configuration name was not specified.")
	case in.Platform != "ECS":
		return nil, Errorf("InvalidComputePlatformException", "the fake holds ECS deployment configs only, got %q", in.Platform)
	case tr.Type == "TimeBasedCanary" && in.Routing.Canary != nil:
		tr.Percent, tr.Minutes = in.Routing.Canary.Percent, in.Routing.Canary.Interval
	case tr.Type == "TimeBasedLinear" && in.Routing.Linear != nil:
		tr.Percent, tr.Minutes = in.Routing.Linear.Percent, in.Routing.Linear.Interval
	case tr.Type != "AllAtOnce":
		return nil, Errorf("InvalidTrafficRoutingConfigurationException", "traffic routing %q lacks its settings", tr.Type)
	}
	if tr.Type != "AllAtOnce" && (tr.Percent < 1 || tr.Percent > 99 || tr.Minutes < 1) {
		return nil, Errorf("InvalidTrafficRoutingConfigurationException", "percentage must be 1..99 and interval at least 1 minute")
	}
	c.configs[in.Name] = tr
	return map[string]string{"deploymentConfigId": fmt.Sprintf("cfg-%d", len(c.configs))}, nil
}

func (tr TrafficRouting) json() map[string]any {
	out := map[string]any{"type": tr.Type}
	switch tr.Type {
	case "TimeBasedCanary":
		out["timeBasedCanary"] = map[string]int{"canaryPercentage": tr.Percent, "canaryInterval": tr.Minutes}
	case "TimeBasedLinear":
		out["timeBasedLinear"] = map[string]int{"linearPercentage": tr.Percent, "linearInterval": tr.Minutes}
	}
	return out
}

// epochOrNil leaves a zero time out of a document.
func epochOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return Epoch(t)
}

func (d *Deployment) info() map[string]any {
	info := map[string]any{
		"applicationName": d.App, "deploymentGroupName": d.Group, "deploymentConfigName": d.Config, "deploymentId": d.ID,
		"status": d.Status, "creator": d.Creator, "description": d.Description, "computePlatform": "ECS",
		"createTime": Epoch(d.Created), "startTime": epochOrNil(d.Started), "completeTime": epochOrNil(d.Completed),
		"deploymentStyle":           map[string]string{"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
		"autoRollbackConfiguration": autoRollbackJSON{Enabled: len(d.AutoRollback) > 0, Events: d.AutoRollback},
		"revision":                  map[string]any{"revisionType": "AppSpecContent", "appSpecContent": map[string]string{"content": d.AppSpec}},
	}
	if d.ErrorCode != "" {
		info["errorInformation"] = map[string]string{"code": d.ErrorCode, "message": d.ErrorMessage}
	}
	if d.RollbackID != "" || d.RollbackOf != "" {
		info["rollbackInfo"] = map[string]string{"rollbackDeploymentId": d.RollbackID, "rollbackTriggeringDeploymentId": d.RollbackOf, "rollbackMessage": d.RollbackMessage}
	}
	return info
}

// target is the deployment's ECS target: its lifecycle events and the
// blue and green task sets with their traffic weights.
func (d *Deployment) target(g *DeploymentGroup, now time.Time) map[string]any {
	events := []any{}
	for _, e := range d.Events {
		ev := map[string]any{"lifecycleEventName": e.Name, "status": e.Status, "startTime": epochOrNil(e.Start), "endTime": epochOrNil(e.End)}
		if e.Diagnostic != "" {
			ev["diagnostics"] = map[string]string{"errorCode": "ScriptFailed", "message": e.Diagnostic}
		}
		events = append(events, ev)
	}
	status := d.Status // TargetStatus has no Created or Stopped
	switch status {
	case "Created":
		status = "Pending"
	case "Stopped":
		status = "Failed"
	}
	taskSet := func(label, id string, weight int) map[string]any {
		return map[string]any{"identifer": id, "desiredCount": 2, "pendingCount": 0, "runningCount": 2, "status": "ACTIVE",
			"trafficWeight": float64(weight), "taskSetLabel": label, "targetGroup": map[string]string{"name": g.Service + "-" + label}}
	}
	return map[string]any{
		"deploymentId": d.ID, "targetId": g.Cluster + ":" + g.Service, "status": status, "lastUpdatedAt": Epoch(now),
		"targetArn":       fmt.Sprintf("arn:aws:ecs:us-east-1:000000000000:service/%s/%s", g.Cluster, g.Service),
		"lifecycleEvents": events,
		"taskSetsInfo":    []any{taskSet("Blue", "ecs-svc/blue-"+d.ID, 100-d.Weight), taskSet("Green", "ecs-svc/green-"+d.ID, d.Weight)},
	}
}
