package ecs_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecs"
)

// hookedECS and hookedELB call before ahead of every call with its
// operation's name; an error it returns is the call's, and the call is
// not made.
type hookedECS struct {
	api    ecs.ECS
	before func(op string) error
}

type hookedELB struct {
	api    ecs.ELB
	before func(op string) error
}

func (h hookedECS) RegisterTaskDefinition(ctx context.Context, in *awsecs.RegisterTaskDefinitionInput, o ...func(*awsecs.Options)) (*awsecs.RegisterTaskDefinitionOutput, error) {
	if err := h.before("RegisterTaskDefinition"); err != nil {
		return nil, err
	}
	return h.api.RegisterTaskDefinition(ctx, in, o...)
}

func (h hookedECS) CreateTaskSet(ctx context.Context, in *awsecs.CreateTaskSetInput, o ...func(*awsecs.Options)) (*awsecs.CreateTaskSetOutput, error) {
	if err := h.before("CreateTaskSet"); err != nil {
		return nil, err
	}
	return h.api.CreateTaskSet(ctx, in, o...)
}

func (h hookedECS) DescribeTaskSets(ctx context.Context, in *awsecs.DescribeTaskSetsInput, o ...func(*awsecs.Options)) (*awsecs.DescribeTaskSetsOutput, error) {
	if err := h.before("DescribeTaskSets"); err != nil {
		return nil, err
	}
	return h.api.DescribeTaskSets(ctx, in, o...)
}

func (h hookedECS) UpdateServicePrimaryTaskSet(ctx context.Context, in *awsecs.UpdateServicePrimaryTaskSetInput, o ...func(*awsecs.Options)) (*awsecs.UpdateServicePrimaryTaskSetOutput, error) {
	if err := h.before("UpdateServicePrimaryTaskSet"); err != nil {
		return nil, err
	}
	return h.api.UpdateServicePrimaryTaskSet(ctx, in, o...)
}

func (h hookedECS) DeleteTaskSet(ctx context.Context, in *awsecs.DeleteTaskSetInput, o ...func(*awsecs.Options)) (*awsecs.DeleteTaskSetOutput, error) {
	if err := h.before("DeleteTaskSet"); err != nil {
		return nil, err
	}
	return h.api.DeleteTaskSet(ctx, in, o...)
}

func (h hookedELB) ModifyListener(ctx context.Context, in *elb.ModifyListenerInput, o ...func(*elb.Options)) (*elb.ModifyListenerOutput, error) {
	if err := h.before("ModifyListener"); err != nil {
		return nil, err
	}
	return h.api.ModifyListener(ctx, in, o...)
}

func (h hookedELB) ModifyRule(ctx context.Context, in *elb.ModifyRuleInput, o ...func(*elb.Options)) (*elb.ModifyRuleOutput, error) {
	if err := h.before("ModifyRule"); err != nil {
		return nil, err
	}
	return h.api.ModifyRule(ctx, in, o...)
}

func (h hookedELB) DescribeTargetHealth(ctx context.Context, in *elb.DescribeTargetHealthInput, o ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error) {
	if err := h.before("DescribeTargetHealth"); err != nil {
		return nil, err
	}
	return h.api.DescribeTargetHealth(ctx, in, o...)
}

// hookedProvider is w's provider (as on one agent) whose every API call
// passes before.
func (w *world) hookedProvider(t *testing.T, health ecs.HealthFunc, before func(op string) error) *ecs.Provider {
	p, err := ecs.New(ecs.Config{
		ECS: hookedECS{w.ecs, before}, ELB: hookedELB{w.elb, before}, Cluster: "prod", Service: "web", ListenerARN: w.listener,
		TargetGroups: w.tgs, Subnets: w.subnets, SecurityGroups: []string{w.sg}, Health: health, PollInterval: 10e6,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var errDead = errors.New("the agent is dead")

// TestResumeAfterAgentLoss: the agent releasing v2 dies while green takes
// 10 % (from then on it makes no call: it neither shifts nor rolls back),
// leaving the listener at 90/10 and two task sets. The re-delivered
// stage's release of v2, by a new Provider as on another agent, first
// gives blue all the traffic, only then deletes the dead release's green,
// and releases v2 again: 90/10, 50/50, 0/100, one green at a time; v1's
// task set is removed and v2 is the only, primary, task set.
func TestResumeAfterAgentLoss(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	if _, err := w.provider(t, healthy).Deploy(ctx, rel("v1"), nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}

	var dead atomic.Bool
	agentA := w.hookedProvider(t, func(_ context.Context, c ecs.Check) error {
		if c.Weight == 10 {
			dead.Store(true)
		}
		return nil
	}, func(string) error {
		if dead.Load() {
			return errDead
		}
		return nil
	})
	if res, err := agentA.Deploy(ctx, rel("v2"), nil); !errors.Is(err, errDead) {
		t.Fatalf("release on the agent that dies: %s, %v; want it cut off", res.Outcome, err)
	}
	if got := w.weights(t); got[w.tgs[0]] != 90 || got[w.tgs[1]] != 10 {
		t.Fatalf("weights left by the dead agent: %v, want A 90, B 10", got)
	}
	if got := w.sets(t); len(got) != 2 {
		t.Fatalf("task sets left by the dead agent: %+v, want v1 and v2", got)
	}

	var atDelete []string
	var shifts [][2]int32
	agentB := w.hookedProvider(t, healthy, func(op string) error {
		if op == "DeleteTaskSet" {
			wt := w.weights(t)
			atDelete = append(atDelete, fmt.Sprintf("%d/%d", wt[w.tgs[0]], wt[w.tgs[1]]))
		}
		return nil
	})
	res, err := agentB.Deploy(ctx, rel("v2"), func(e deploy.Event) {
		if e.Phase != deploy.PhaseShift {
			return
		}
		wt := w.weights(t)
		shifts = append(shifts, [2]int32{wt[w.tgs[0]], wt[w.tgs[1]]})
		if n := len(w.sets(t)); n != 2 {
			t.Errorf("at %d%% there are %d task sets, want blue and one green", e.Weight, n)
		}
	})
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "v1" || res.To != "v2" {
		t.Fatalf("re-delivered release: %s from %q to %q, %v; want succeeded from v1 to v2", res.Outcome, res.From, res.To, err)
	}
	// The dead release's green, then v1 after the promotion.
	if want := []string{"100/0", "0/100"}; fmt.Sprint(atDelete) != fmt.Sprint(want) {
		t.Errorf("weights A/B when task sets were deleted: %v, want %v (blue takes everything before the leftover green goes)", atDelete, want)
	}
	if want := [][2]int32{{90, 10}, {50, 50}, {0, 100}}; fmt.Sprint(shifts) != fmt.Sprint(want) {
		t.Errorf("weights A/B during the re-delivered release: %v, want %v", shifts, want)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v2", "PRIMARY", w.tgs[1]}) {
		t.Errorf("task sets after the re-delivered release: %+v, want only primary v2 in %s", got, w.tgs[1])
	}
}

// TestStaleAttemptSuperseded: the agent releasing v2 freezes while green
// takes 10 % (a stopped process: it wakes up later); the stage's next
// attempt releases v2 to the end on another agent. The woken release
// finds its green gone and changes nothing: the listener keeps sending
// everything to the new attempt's v2, its only task set.
func TestStaleAttemptSuperseded(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	if _, err := w.provider(t, healthy).Deploy(ctx, rel("v1"), nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	frozen, wake := make(chan struct{}), make(chan struct{})
	type result struct {
		res deploy.Result
		err error
	}
	first := make(chan result, 1)
	go func() {
		res, err := w.provider(t, healthy).Deploy(ctx, rel("v2"), func(e deploy.Event) {
			if e.Phase == deploy.PhaseShift && e.Weight == 10 {
				close(frozen)
				<-wake
			}
		})
		first <- result{res, err}
	}()
	<-frozen
	if res, err := w.provider(t, healthy).Deploy(ctx, rel("v2"), nil); err != nil || res.From != "v1" {
		t.Fatalf("the next attempt: %s from %q, %v; want succeeded from v1", res.Outcome, res.From, err)
	}
	close(wake)
	r := <-first
	if r.res.Outcome == deploy.Succeeded || !errors.Is(r.err, ecs.ErrSuperseded) {
		t.Errorf("the woken release: %s, %v; want it superseded", r.res.Outcome, r.err)
	}
	if got := w.weights(t); got[w.tgs[0]] != 0 || got[w.tgs[1]] != 100 {
		t.Errorf("weights after the woken release: %v, want A 0, B 100", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v2", "PRIMARY", w.tgs[1]}) {
		t.Errorf("task sets after the woken release: %+v, want only primary v2 in %s", got, w.tgs[1])
	}
}
