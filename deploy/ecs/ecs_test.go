package ecs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/ecs"
)

// world is an ECS service behind an ALB listener in moto.
type world struct {
	ecs      *awsecs.Client
	elb      *elb.Client
	listener string
	tgs      [2]string
	subnets  []string
	sg       string
}

// failure is what must panics with; guard turns it into t.Fatal.
type failure struct{ err error }

func must[T any](v T, err error) T {
	if err != nil {
		panic(failure{err})
	}
	return v
}

// guard, deferred by a test or helper that calls must, fails the test
// with must's error.
func guard(t *testing.T) {
	if r := recover(); r != nil {
		if f, ok := r.(failure); ok {
			t.Helper()
			t.Fatal(f.err)
		}
		panic(r)
	}
}

func setup(t *testing.T) *world {
	defer guard(t)
	url := moto(t)
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	ep := aws.String(url)
	e2 := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = ep })
	w := &world{
		ecs: awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = ep }),
		elb: elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = ep }),
	}
	vpc := must(e2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")}))
	vpcID := vpc.Vpc.VpcId
	// moto's task ENIs need a DNS name, which it gives only in a VPC with
	// DNS hostnames.
	must(e2.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: vpcID, EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}}))
	for i, az := range []string{"us-east-1a", "us-east-1b"} {
		sn := must(e2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpcID, CidrBlock: aws.String(fmt.Sprintf("10.0.%d.0/24", i)), AvailabilityZone: aws.String(az)}))
		w.subnets = append(w.subnets, aws.ToString(sn.Subnet.SubnetId))
	}
	sg := must(e2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web"), VpcId: vpcID}))
	w.sg = aws.ToString(sg.GroupId)

	for i, n := range []string{"web-a", "web-b"} {
		tg := must(w.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(n), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(8080), VpcId: vpcID, TargetType: elbtypes.TargetTypeEnumIp}))
		w.tgs[i] = aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	}
	lb := must(w.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: w.subnets, SecurityGroups: []string{w.sg}}))
	ln := must(w.elb.CreateListener(ctx, &elb.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
			{TargetGroupArn: aws.String(w.tgs[0]), Weight: aws.Int32(100)}, {TargetGroupArn: aws.String(w.tgs[1]), Weight: aws.Int32(0)},
		}}}},
	}))
	w.listener = aws.ToString(ln.Listeners[0].ListenerArn)
	must(w.ecs.CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: aws.String("prod")}))
	must(w.ecs.CreateService(ctx, &awsecs.CreateServiceInput{
		Cluster: aws.String("prod"), ServiceName: aws.String("web"), DesiredCount: aws.Int32(2),
		DeploymentController: &ecstypes.DeploymentController{Type: ecstypes.DeploymentControllerTypeExternal},
	}))
	return w
}

func (w *world) provider(t *testing.T, health ecs.HealthFunc) *ecs.Provider {
	p, err := ecs.New(ecs.Config{
		ECS: w.ecs, ELB: w.elb, Cluster: "prod", Service: "web", ListenerARN: w.listener, TargetGroups: w.tgs,
		Subnets: w.subnets, SecurityGroups: []string{w.sg}, Health: health, PollInterval: 10e6,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// weights returns the listener's forward weights by target group.
func (w *world) weights(t *testing.T) map[string]int32 {
	defer guard(t)
	out := must(w.elb.DescribeListeners(context.Background(), &elb.DescribeListenersInput{ListenerArns: []string{w.listener}}))
	got := map[string]int32{}
	for _, a := range out.Listeners[0].DefaultActions {
		if a.ForwardConfig == nil {
			continue
		}
		for _, tg := range a.ForwardConfig.TargetGroups {
			got[aws.ToString(tg.TargetGroupArn)] = aws.ToInt32(tg.Weight)
		}
	}
	return got
}

type set struct{ version, status, tg string }

func (w *world) sets(t *testing.T) []set {
	defer guard(t)
	out := must(w.ecs.DescribeTaskSets(context.Background(), &awsecs.DescribeTaskSetsInput{Cluster: aws.String("prod"), Service: aws.String("web")}))
	var ss []set
	for _, s := range out.TaskSets {
		x := set{version: aws.ToString(s.ExternalId), status: aws.ToString(s.Status)}
		if len(s.LoadBalancers) > 0 {
			x.tg = aws.ToString(s.LoadBalancers[0].TargetGroupArn)
		}
		ss = append(ss, x)
	}
	return ss
}

func healthy(context.Context, ecs.Check) error { return nil }

func rel(v string) deploy.Release {
	return deploy.Release{App: "web", Version: v, Image: "registry.example/web:" + v, Port: 8080,
		Env: map[string]string{"VERSION": v}, TrafficSteps: []int{10, 50}}
}

func TestBlueGreen(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	var failAt50 bool
	p := w.provider(t, func(ctx context.Context, c ecs.Check) error {
		if failAt50 && c.Weight == 50 {
			return errors.New("injected: 5xx rate too high")
		}
		return nil
	})

	// v1: first release into target group A.
	res, err := p.Deploy(ctx, rel("v1"), nil)
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "" {
		t.Fatalf("deploy v1: got %s from %q, err %v; want succeeded from \"\"", res.Outcome, res.From, err)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v1", "PRIMARY", w.tgs[0]}) {
		t.Fatalf("after v1: got task sets %+v, want one primary v1 in %s", got, w.tgs[0])
	}

	// v2: green in target group B; weights walk 90/10, 50/50, 0/100.
	var seen [][2]int32
	res, err = p.Deploy(ctx, rel("v2"), func(e deploy.Event) {
		if e.Phase == deploy.PhaseShift {
			wt := w.weights(t)
			seen = append(seen, [2]int32{wt[w.tgs[0]], wt[w.tgs[1]]})
		}
	})
	if err != nil || res.Outcome != deploy.Succeeded || res.From != "v1" || res.To != "v2" {
		t.Fatalf("deploy v2: got %s from %q to %q, err %v; want succeeded from v1 to v2", res.Outcome, res.From, res.To, err)
	}
	if want := [][2]int32{{90, 10}, {50, 50}, {0, 100}}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("weights A/B during the shift: got %v, want %v", seen, want)
	}
	if got := w.weights(t); got[w.tgs[0]] != 0 || got[w.tgs[1]] != 100 {
		t.Errorf("weights after v2: got %v, want A 0, B 100", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v2", "PRIMARY", w.tgs[1]}) {
		t.Errorf("after v2: got task sets %+v, want only primary v2 in %s", got, w.tgs[1])
	}

	// v3 turns unhealthy at 50 %: weights back to B 100, green deleted.
	failAt50 = true
	res, err = p.Deploy(ctx, rel("v3"), nil)
	if !errors.Is(err, deploy.ErrRolledBack) || res.Outcome != deploy.RolledBack {
		t.Fatalf("deploy v3: got %s, err %v; want rolled_back", res.Outcome, err)
	}
	if n := len(res.Steps); n != 2 || res.Steps[0].Weight != 10 || !res.Steps[0].Healthy || res.Steps[1].Weight != 50 || res.Steps[1].Healthy {
		t.Errorf("v3 steps: got %+v, want 10%% healthy then 50%% unhealthy", res.Steps)
	}
	if got := w.weights(t); got[w.tgs[0]] != 0 || got[w.tgs[1]] != 100 {
		t.Errorf("weights after rollback: got %v, want A 0, B 100 (blue v2 in B)", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v2", "PRIMARY", w.tgs[1]}) {
		t.Errorf("after rollback: got task sets %+v, want only primary v2 in %s", got, w.tgs[1])
	}

	// v4 healthy again: green goes back to target group A.
	failAt50 = false
	if _, err := p.Deploy(ctx, rel("v4"), nil); err != nil {
		t.Fatalf("deploy v4: %v", err)
	}
	if got := w.weights(t); got[w.tgs[0]] != 100 || got[w.tgs[1]] != 0 {
		t.Errorf("weights after v4: got %v, want A 100, B 0", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v4", "PRIMARY", w.tgs[0]}) {
		t.Errorf("after v4: got task sets %+v, want only primary v4 in %s", got, w.tgs[0])
	}
}

// TestDefaultHealth: with the default checker (DescribeTargetHealth),
// a green target group without healthy targets never takes traffic.
func TestDefaultHealth(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	if _, err := w.provider(t, healthy).Deploy(ctx, rel("v1"), nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	p := w.provider(t, nil)
	r := rel("v2")
	r.Health.StartTimeout = 300e6
	r.Health.Interval = 50e6
	res, err := p.Deploy(ctx, r, nil)
	if !errors.Is(err, deploy.ErrFailed) || res.Outcome != deploy.Failed || len(res.Steps) != 0 {
		t.Fatalf("got %s, %d steps, err %v; want failed without steps", res.Outcome, len(res.Steps), err)
	}
	if got := w.weights(t); got[w.tgs[0]] != 100 || got[w.tgs[1]] != 0 {
		t.Errorf("weights: got %v, want A 100, B 0", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0].version != "v1" {
		t.Errorf("got task sets %+v, want only v1", got)
	}
}

// TestCancelAndRule: releases driven through a listener rule
// (ModifyRule); a release cancelled at 10 % restores the rule's weights
// and deletes green.
func TestCancelAndRule(t *testing.T) {
	defer guard(t)
	w := setup(t)
	ctx := context.Background()
	fwd := func(a, b int32) []elbtypes.Action {
		return []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
			{TargetGroupArn: aws.String(w.tgs[0]), Weight: aws.Int32(a)}, {TargetGroupArn: aws.String(w.tgs[1]), Weight: aws.Int32(b)},
		}}}}
	}
	rule := must(w.elb.CreateRule(ctx, &elb.CreateRuleInput{
		ListenerArn: aws.String(w.listener), Priority: aws.Int32(10), Actions: fwd(100, 0),
		Conditions: []elbtypes.RuleCondition{{Field: aws.String("path-pattern"), Values: []string{"/api/*"}}},
	}))
	ruleARN := aws.ToString(rule.Rules[0].RuleArn)
	ruleWeights := func() [2]int32 {
		out := must(w.elb.DescribeRules(ctx, &elb.DescribeRulesInput{RuleArns: []string{ruleARN}}))
		got := map[string]int32{}
		for _, a := range out.Rules[0].Actions {
			if a.ForwardConfig != nil {
				for _, tg := range a.ForwardConfig.TargetGroups {
					got[aws.ToString(tg.TargetGroupArn)] = aws.ToInt32(tg.Weight)
				}
			}
		}
		return [2]int32{got[w.tgs[0]], got[w.tgs[1]]}
	}
	p, err := ecs.New(ecs.Config{
		ECS: w.ecs, ELB: w.elb, Cluster: "prod", Service: "web", RuleARN: ruleARN, TargetGroups: w.tgs,
		Subnets: w.subnets, SecurityGroups: []string{w.sg}, Health: healthy, PollInterval: 10e6,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Deploy(ctx, rel("v1"), nil); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	if got := ruleWeights(); got != [2]int32{100, 0} {
		t.Errorf("rule weights after v1: got %v, want [100 0]", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var at10 [2]int32
	r := rel("v2")
	r.BakeTime = time.Hour
	res, err := p.Deploy(cctx, r, func(e deploy.Event) {
		if e.Phase == deploy.PhaseShift && e.Weight == 10 {
			at10 = ruleWeights()
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Outcome != deploy.RolledBack {
		t.Fatalf("got %s, err %v; want rolled_back wrapping context.Canceled", res.Outcome, err)
	}
	if at10 != [2]int32{90, 10} {
		t.Errorf("rule weights at the 10 %% step: got %v, want [90 10]", at10)
	}
	if got := ruleWeights(); got != [2]int32{100, 0} {
		t.Errorf("rule weights after rollback: got %v, want [100 0]", got)
	}
	if got := w.sets(t); len(got) != 1 || got[0] != (set{"v1", "PRIMARY", w.tgs[0]}) {
		t.Errorf("after rollback: got task sets %+v, want only primary v1 in %s", got, w.tgs[0])
	}
	if got := w.weights(t); got[w.tgs[0]] != 100 || got[w.tgs[1]] != 0 {
		t.Errorf("listener default action changed: got %v, want A 100, B 0", got)
	}
}
