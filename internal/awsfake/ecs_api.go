package awsfake

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The ECS operations the fake implements, as the ECS API reference
// documents them (request and response members; errors
// ClientException, InvalidParameterException, ServiceNotFoundException,
// ServiceDeploymentNotFoundException, ConflictException).

func (f *ECS) register(body []byte, now time.Time) (*ecsTaskDef, error) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, Errorf("SerializationException", "RegisterTaskDefinition: %v", err)
	}
	family, _ := doc["family"].(string)
	if family == "" {
		return nil, Errorf("ClientException", "Family is required.")
	}
	if cs, _ := doc["containerDefinitions"].([]any); len(cs) == 0 {
		return nil, Errorf("ClientException", "Container list cannot be empty.")
	}
	tags, _ := json.Marshal(doc["tags"])
	delete(doc, "tags")
	f.families[family]++
	td := &ecsTaskDef{family: family, revision: f.families[family], doc: doc, tags: tags, registered: now}
	td.arn = fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%d", ecsRegion, ecsAccount, family, td.revision)
	doc["taskDefinitionArn"], doc["revision"], doc["status"], doc["registeredAt"] = td.arn, td.revision, "ACTIVE", Epoch(now)
	if _, ok := doc["requiresCompatibilities"]; ok {
		doc["compatibilities"] = doc["requiresCompatibilities"]
	}
	f.taskDefs[td.arn] = td
	return td, nil
}

func (f *ECS) registerTaskDefinition(r *Request) (any, error) {
	td, err := f.register(r.Body, r.Now)
	if err != nil {
		return nil, err
	}
	return map[string]any{"taskDefinition": td.doc, "tags": td.tags}, nil
}

// taskDef resolves an ARN, "family:revision" or "family" (the latest).
func (f *ECS) taskDef(ref string) (*ecsTaskDef, error) {
	if td := f.taskDefs[ref]; td != nil {
		return td, nil
	}
	family, rev, ok := strings.Cut(ref, ":")
	if !ok {
		rev = fmt.Sprint(f.families[family])
	}
	if td := f.taskDefs[fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%s", ecsRegion, ecsAccount, family, rev)]; td != nil {
		return td, nil
	}
	return nil, Errorf("ClientException", "Unable to describe task definition.")
}

func (f *ECS) describeTaskDefinition(r *Request) (any, error) {
	var in struct {
		TaskDefinition string   `json:"taskDefinition"`
		Include        []string `json:"include"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	td, err := f.taskDef(in.TaskDefinition)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"taskDefinition": td.doc}
	if slices.Contains(in.Include, "TAGS") {
		out["tags"] = td.tags
	}
	return out, nil
}

func clusterName(ref string) string {
	if ref == "" {
		return "default"
	}
	if _, name, ok := strings.Cut(ref, ":cluster/"); ok {
		return name
	}
	return ref
}

func clusterARN(name string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", ecsRegion, ecsAccount, name)
}

func (f *ECS) service(cluster, ref string) *ecsService {
	return f.services[clusterName(cluster)+"/"+ref[strings.LastIndex(ref, "/")+1:]]
}

func (f *ECS) serviceDoc(svc *ecsService, now time.Time) map[string]any {
	serving := svc.serving(now)
	doc := map[string]any{
		"serviceArn": svc.arn, "serviceName": svc.name, "clusterArn": clusterARN(svc.cluster), "status": "ACTIVE",
		"taskDefinition": serving.taskDef, "deploymentController": map[string]string{"type": svc.controller},
		"deploymentConfiguration": svc.config, "desiredCount": 1, "runningCount": 1, "pendingCount": 0,
		"launchType": "FARGATE", "createdAt": Epoch(svc.created),
		"currentServiceRevisions": []map[string]any{{"arn": serving.arn, "requestedTaskCount": 1, "runningTaskCount": 1, "pendingTaskCount": 0}},
	}
	if svc.latest != nil {
		doc["currentServiceDeployment"] = svc.latest.arn
	}
	return doc
}

func (f *ECS) describeServices(r *Request) (any, error) {
	var in struct {
		Cluster  string   `json:"cluster"`
		Services []string `json:"services"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	services, failures := []any{}, []any{}
	for _, ref := range in.Services {
		if svc := f.service(in.Cluster, ref); svc != nil {
			services = append(services, f.serviceDoc(svc, r.Now))
		} else {
			failures = append(failures, map[string]string{"arn": ref, "reason": "MISSING"})
		}
	}
	return map[string]any{"services": services, "failures": failures}, nil
}

func (f *ECS) updateService(r *Request) (any, error) {
	var in struct {
		Cluster                 string          `json:"cluster"`
		Service                 string          `json:"service"`
		TaskDefinition          string          `json:"taskDefinition"`
		DeploymentConfiguration json.RawMessage `json:"deploymentConfiguration"`
		ForceNewDeployment      bool            `json:"forceNewDeployment"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	svc := f.service(in.Cluster, in.Service)
	switch {
	case svc == nil:
		return nil, Errorf("ServiceNotFoundException", "Service not found.")
	case svc.controller != "ECS" && in.TaskDefinition != "":
		return nil, Errorf("InvalidParameterException", "Unable to update the task definition of a service with the %s deployment controller.", svc.controller)
	case svc.latest != nil && svc.latest.active(r.Now):
		return nil, Errorf("InvalidParameterException", "Service deployment %s is in progress (this fake does not supersede deployments).", svc.latest.arn)
	}
	var td *ecsTaskDef
	if in.TaskDefinition != "" {
		var err error
		if td, err = f.taskDef(in.TaskDefinition); err != nil {
			return nil, err
		}
	}
	old := svc.config
	if len(in.DeploymentConfiguration) > 0 {
		svc.config = in.DeploymentConfiguration
	}
	serving := svc.serving(r.Now)
	if td != nil && (td.arn != serving.taskDef || in.ForceNewDeployment) {
		d, err := f.startDeployment(svc, f.newRevision(svc, td.arn, r.Now), r.Now)
		if err != nil {
			svc.config = old
			return nil, err
		}
		svc.revision, svc.latest = serving, d
	}
	return map[string]any{"service": f.serviceDoc(svc, r.Now)}, nil
}

func (f *ECS) describeServiceRevisions(r *Request) (any, error) {
	var in struct {
		ARNs []string `json:"serviceRevisionArns"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	revs, failures := []any{}, []any{}
	for _, arn := range in.ARNs {
		if rev := f.revisions[arn]; rev != nil {
			revs = append(revs, map[string]any{"serviceRevisionArn": rev.arn, "serviceArn": rev.service, "clusterArn": clusterARN(rev.cluster),
				"taskDefinition": rev.taskDef, "launchType": "FARGATE", "createdAt": Epoch(rev.created)})
		} else {
			failures = append(failures, map[string]string{"arn": arn, "reason": "MISSING"})
		}
	}
	return map[string]any{"serviceRevisions": revs, "failures": failures}, nil
}

// doc is the deployment as a ServiceDeployment at now.
func (d *ecsDeployment) doc(now time.Time) map[string]any {
	seg := d.at(now)
	rev := func(arn string, w float64) map[string]any {
		return map[string]any{"arn": arn, "requestedTaskCount": 1, "runningTaskCount": 1, "pendingTaskCount": 0, "requestedProductionTrafficWeight": w}
	}
	doc := map[string]any{
		"serviceDeploymentArn": d.arn, "serviceArn": d.svc.arn, "clusterArn": clusterARN(d.svc.cluster),
		"createdAt": Epoch(d.created), "updatedAt": Epoch(seg.start), "status": seg.status, "deploymentConfiguration": d.config,
		"targetServiceRevision": rev(d.target.arn, seg.weight), "sourceServiceRevisions": []any{rev(d.source.arn, 100-seg.weight)},
	}
	if seg.stage != "" {
		doc["lifecycleStage"] = seg.stage
	}
	if len(d.segs) > 1 && !now.Before(d.segs[1].start) {
		doc["startedAt"] = Epoch(d.segs[1].start)
	}
	if t := d.finished(now); !t.IsZero() {
		doc["finishedAt"] = Epoch(t)
	}
	if !d.rollbackStarted.IsZero() && !now.Before(d.rollbackStarted) {
		doc["statusReason"] = d.rollbackReason
		doc["rollback"] = map[string]any{"reason": d.rollbackReason, "startedAt": Epoch(d.rollbackStarted), "serviceRevisionArn": d.source.arn}
	}
	return doc
}

func (f *ECS) describeServiceDeployments(r *Request) (any, error) {
	var in struct {
		ARNs []string `json:"serviceDeploymentArns"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	out, failures := []any{}, []any{}
	for _, arn := range in.ARNs {
		if d := f.deployments[arn]; d != nil {
			out = append(out, d.doc(r.Now))
		} else {
			failures = append(failures, map[string]string{"arn": arn, "reason": "MISSING"})
		}
	}
	return map[string]any{"serviceDeployments": out, "failures": failures}, nil
}

func (f *ECS) listServiceDeployments(r *Request) (any, error) {
	var in struct {
		Cluster string   `json:"cluster"`
		Service string   `json:"service"`
		Status  []string `json:"status"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	svc := f.service(in.Cluster, in.Service)
	if svc == nil {
		return nil, Errorf("ServiceNotFoundException", "Service not found.")
	}
	var ds []*ecsDeployment
	for _, d := range f.deployments {
		if d.svc == svc && (len(in.Status) == 0 || slices.Contains(in.Status, d.at(r.Now).status)) {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b *ecsDeployment) int { return b.created.Compare(a.created) })
	out := []any{}
	for _, d := range ds {
		doc := d.doc(r.Now)
		brief := map[string]any{"targetServiceRevisionArn": d.target.arn}
		for _, k := range []string{"serviceDeploymentArn", "serviceArn", "clusterArn", "status", "statusReason", "createdAt", "startedAt", "finishedAt"} {
			if v, ok := doc[k]; ok {
				brief[k] = v
			}
		}
		out = append(out, brief)
	}
	return map[string]any{"serviceDeployments": out}, nil
}

func (f *ECS) stopServiceDeployment(r *Request) (any, error) {
	var in struct {
		ARN      string `json:"serviceDeploymentArn"`
		StopType string `json:"stopType"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	d := f.deployments[in.ARN]
	if d == nil {
		return nil, Errorf("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
	}
	if in.StopType != "" && in.StopType != "ROLLBACK" {
		return nil, Errorf("InvalidParameterException", "stopType %q is not implemented by this fake (ROLLBACK)", in.StopType)
	}
	if st := d.at(r.Now).status; st != "PENDING" && st != "IN_PROGRESS" {
		return nil, Errorf("ConflictException", "The service deployment is %s, not in progress.", st)
	}
	d.rollback(r.Now, "Service deployment rolled back because of a StopServiceDeployment request.", f.stageTime(), true, f.rollbackFails(d.target))
	return map[string]any{"serviceDeploymentArn": d.arn}, nil
}

// serviceByARN finds a service by its ARN (tags are set on ARNs).
func (f *ECS) serviceByARN(arn string) *ecsService {
	for _, svc := range f.services {
		if svc.arn == arn {
			return svc
		}
	}
	return nil
}

type ecsTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (f *ECS) tagResource(r *Request) (any, error) {
	var in struct {
		ResourceARN string   `json:"resourceArn"`
		Tags        []ecsTag `json:"tags"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	svc := f.serviceByARN(in.ResourceARN)
	if svc == nil {
		return nil, Errorf("ResourceNotFoundException", "The specified resource could not be found (this fake tags services only).")
	}
	for _, t := range in.Tags {
		svc.tags[t.Key] = t.Value
	}
	return struct{}{}, nil
}

func (f *ECS) listTagsForResource(r *Request) (any, error) {
	var in struct {
		ResourceARN string `json:"resourceArn"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	svc := f.serviceByARN(in.ResourceARN)
	if svc == nil {
		return nil, Errorf("ResourceNotFoundException", "The specified resource could not be found (this fake tags services only).")
	}
	tags := []ecsTag{}
	for _, k := range slices.Sorted(maps.Keys(svc.tags)) {
		tags = append(tags, ecsTag{k, svc.tags[k]})
	}
	return map[string]any{"tags": tags}, nil
}
