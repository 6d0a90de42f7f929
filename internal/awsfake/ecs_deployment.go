package awsfake

import (
	"encoding/json"
	"fmt"
	"time"
)

// ecsDeployment is a service deployment: a timeline of segments fixed
// when it starts and cut short when it is rolled back.
type ecsDeployment struct {
	arn             string
	svc             *ecsService
	source, target  *ecsRevision
	config          json.RawMessage
	created         time.Time
	segs            []ecsSegment // consecutive; the last one never ends
	rollbackReason  string
	rollbackStarted time.Time
}

// ecsSegment is a span of a deployment with one status, lifecycle stage
// and production traffic weight on the target revision.
type ecsSegment struct {
	status, stage string
	weight        float64
	start, end    time.Time // end zero: the final segment
}

// ecsStrategy is the part of a deploymentConfiguration the fake runs.
type ecsStrategy struct {
	Strategy          string `json:"strategy"`
	BakeTimeInMinutes int    `json:"bakeTimeInMinutes"`
	Canary            *struct {
		Percent float64 `json:"canaryPercent"`
		Bake    int     `json:"canaryBakeTimeInMinutes"`
	} `json:"canaryConfiguration"`
	Linear *struct {
		Percent float64 `json:"stepPercent"`
		Bake    int     `json:"stepBakeTimeInMinutes"`
	} `json:"linearConfiguration"`
}

// ecsShift is a production traffic step and how long it is held.
type ecsShift struct {
	weight float64
	hold   time.Duration
}

// shifts are the production traffic steps of a strategy.
func (f *ECS) shifts(st ecsStrategy) ([]ecsShift, error) {
	minute := f.minute()
	switch {
	case st.Strategy == "BLUE_GREEN":
		return []ecsShift{{weight: 100}}, nil
	case st.Strategy == "CANARY" && st.Canary != nil && st.Canary.Percent > 0 && st.Canary.Percent <= 100:
		return []ecsShift{{st.Canary.Percent, time.Duration(st.Canary.Bake) * minute}, {weight: 100}}, nil
	case st.Strategy == "LINEAR" && st.Linear != nil && st.Linear.Percent >= 3 && st.Linear.Percent <= 100:
		var out []ecsShift
		for w := st.Linear.Percent; w < 100; w += st.Linear.Percent {
			out = append(out, ecsShift{w, time.Duration(st.Linear.Bake) * minute})
		}
		return append(out, ecsShift{weight: 100}), nil
	case st.Strategy == "CANARY" || st.Strategy == "LINEAR":
		return nil, Errorf("InvalidParameterException", "%s needs its %sConfiguration with a valid percent", st.Strategy, map[string]string{"CANARY": "canary", "LINEAR": "linear"}[st.Strategy])
	}
	return nil, Errorf("UnsupportedFeatureException", "deployment strategy %q is not implemented by this fake (BLUE_GREEN, CANARY, LINEAR)", st.Strategy)
}

func (f *ECS) minute() time.Duration {
	if f.Minute > 0 {
		return f.Minute
	}
	return time.Minute
}

func (f *ECS) stageTime() time.Duration {
	if f.StageTime > 0 {
		return f.StageTime
	}
	return 10 * time.Second
}

// startDeployment makes the timeline of a deployment of svc to target
// starting at now, failing it where a hook for its image says so.
func (f *ECS) startDeployment(svc *ecsService, target *ecsRevision, now time.Time) (*ecsDeployment, error) {
	var st ecsStrategy
	if err := json.Unmarshal(svc.config, &st); err != nil {
		return nil, Errorf("InvalidParameterException", "deploymentConfiguration: %v", err)
	}
	shifts, err := f.shifts(st)
	if err != nil {
		return nil, err
	}
	f.seq++
	d := &ecsDeployment{arn: fmt.Sprintf("arn:aws:ecs:%s:%s:service-deployment/%s/%s/fake%06d", ecsRegion, ecsAccount, svc.cluster, svc.name, f.seq),
		svc: svc, source: svc.serving(now), target: target, config: svc.config, created: now}
	stage := f.stageTime()
	t := now
	add := func(status, stg string, w float64, dur time.Duration) {
		d.segs = append(d.segs, ecsSegment{status: status, stage: stg, weight: w, start: t, end: t.Add(dur)})
		t = t.Add(dur)
	}
	add("PENDING", "", 0, stage)
	for _, stg := range []string{"RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT"} {
		add("IN_PROGRESS", stg, 0, stage)
	}
	for _, sh := range shifts {
		add("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT", sh.weight, max(stage, sh.hold))
	}
	add("IN_PROGRESS", "POST_PRODUCTION_TRAFFIC_SHIFT", 100, stage)
	add("IN_PROGRESS", "BAKE_TIME", 100, time.Duration(st.BakeTimeInMinutes)*f.minute())
	add("IN_PROGRESS", "CLEAN_UP", 100, stage)
	d.segs = append(d.segs, ecsSegment{status: "SUCCESSFUL", stage: "CLEAN_UP", weight: 100, start: t})
	if hf, ok := f.hookFailure(target); ok {
		for _, s := range d.segs {
			if s.stage == hf.stage && s.status == "IN_PROGRESS" {
				d.rollback(s.end, fmt.Sprintf("lifecycle hook at %s returned FAILED: %s", hf.stage, hf.reason), stage, false, hf.rollbackFails)
				break
			}
		}
	}
	f.deployments[d.arn] = d
	return d, nil
}

func (f *ECS) hookFailure(target *ecsRevision) (ecsHookFailure, bool) {
	if td := f.taskDefs[target.taskDef]; td != nil {
		for _, image := range td.images() {
			if hf, ok := f.hooks[image]; ok {
				return hf, true
			}
		}
	}
	return ecsHookFailure{}, false
}

func (f *ECS) rollbackFails(target *ecsRevision) bool {
	hf, _ := f.hookFailure(target)
	return hf.rollbackFails
}

// at returns the segment the deployment is in at now.
func (d *ecsDeployment) at(now time.Time) ecsSegment {
	for _, s := range d.segs {
		if s.end.IsZero() || now.Before(s.end) {
			return s
		}
	}
	return d.segs[len(d.segs)-1]
}

// rollback cuts the timeline at t (which must be before it ends): a
// requested rollback is ROLLBACK_REQUESTED for a stage; then the traffic
// goes back to the source revision over one stage and the deployment
// ends ROLLBACK_SUCCESSFUL, or ROLLBACK_FAILED (still on the target)
// when fails is set.
func (d *ecsDeployment) rollback(t time.Time, reason string, stage time.Duration, requested, fails bool) {
	cur := d.at(t)
	var kept []ecsSegment
	for _, s := range d.segs {
		if s.start.Before(t) {
			if s.end.IsZero() || s.end.After(t) {
				s.end = t
			}
			kept = append(kept, s)
		}
	}
	d.rollbackReason, d.rollbackStarted = reason, t
	if requested {
		kept = append(kept, ecsSegment{status: "ROLLBACK_REQUESTED", stage: cur.stage, weight: cur.weight, start: t, end: t.Add(stage)})
		t = t.Add(stage)
	}
	end := ecsSegment{status: "ROLLBACK_SUCCESSFUL", stage: cur.stage, weight: 0, start: t.Add(stage)}
	if fails {
		end.status, end.weight = "ROLLBACK_FAILED", cur.weight
	}
	d.segs = append(kept, ecsSegment{status: "ROLLBACK_IN_PROGRESS", stage: cur.stage, weight: 0, start: t, end: t.Add(stage)}, end)
}

// active reports whether the deployment has not ended at now.
func (d *ecsDeployment) active(now time.Time) bool {
	switch d.at(now).status {
	case "PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS":
		return true
	}
	return false
}

// finished is when the deployment ended (zero while it runs).
func (d *ecsDeployment) finished(now time.Time) time.Time {
	if d.active(now) {
		return time.Time{}
	}
	return d.at(now).start
}
