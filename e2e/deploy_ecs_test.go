package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/internal/mototest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// startMoto starts a moto_server for the test; it fails under CI and
// skips elsewhere when there is none.
func startMoto(t *testing.T) string {
	t.Helper()
	return mototest.Need(t).URL
}

// ecsWorld is an ECS service (deployment controller EXTERNAL) behind an
// ALB listener forwarding to two target groups, in moto.
type ecsWorld struct {
	ecs      *awsecs.Client
	elb      *elb.Client
	listener string
	tgs      [2]string
	subnets  []string
	sg       string
}

func newECSWorld(t *testing.T, url string) *ecsWorld {
	t.Helper()
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	ep := aws.String(url)
	e2 := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = ep })
	w := &ecsWorld{
		ecs: awsecs.NewFromConfig(cfg, func(o *awsecs.Options) { o.BaseEndpoint = ep }),
		elb: elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = ep }),
	}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	vpc, err := e2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	check(err)
	_, err = e2.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: vpc.Vpc.VpcId, EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}})
	check(err)
	for i, az := range []string{"us-east-1a", "us-east-1b"} {
		sn, err := e2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(fmt.Sprintf("10.0.%d.0/24", i)), AvailabilityZone: aws.String(az)})
		check(err)
		w.subnets = append(w.subnets, aws.ToString(sn.Subnet.SubnetId))
	}
	sg, err := e2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web"), VpcId: vpc.Vpc.VpcId})
	check(err)
	w.sg = aws.ToString(sg.GroupId)
	for i, n := range []string{"web-a", "web-b"} {
		tg, err := w.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(n), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(8080), VpcId: vpc.Vpc.VpcId, TargetType: elbtypes.TargetTypeEnumIp})
		check(err)
		w.tgs[i] = aws.ToString(tg.TargetGroups[0].TargetGroupArn)
		// moto does not register an ECS task set's tasks in its target
		// group; a registered target is reported healthy, which is what
		// ECS does for a healthy task.
		_, err = w.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tg.TargetGroups[0].TargetGroupArn,
			Targets: []elbtypes.TargetDescription{{Id: aws.String(fmt.Sprintf("10.0.0.%d", 10+i)), Port: aws.Int32(8080)}}})
		check(err)
	}
	lb, err := w.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("web"), Subnets: w.subnets, SecurityGroups: []string{w.sg}})
	check(err)
	ln, err := w.elb.CreateListener(ctx, &elb.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, ForwardConfig: &elbtypes.ForwardActionConfig{TargetGroups: []elbtypes.TargetGroupTuple{
			{TargetGroupArn: aws.String(w.tgs[0]), Weight: aws.Int32(100)}, {TargetGroupArn: aws.String(w.tgs[1]), Weight: aws.Int32(0)},
		}}}},
	})
	check(err)
	w.listener = aws.ToString(ln.Listeners[0].ListenerArn)
	_, err = w.ecs.CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: aws.String("prod")})
	check(err)
	_, err = w.ecs.CreateService(ctx, &awsecs.CreateServiceInput{
		Cluster: aws.String("prod"), ServiceName: aws.String("web"), DesiredCount: aws.Int32(2),
		DeploymentController: &ecstypes.DeploymentController{Type: ecstypes.DeploymentControllerTypeExternal},
	})
	check(err)
	return w
}

// weights returns the listener's forward weights as "a/b".
func (w *ecsWorld) weights(t *testing.T) string {
	t.Helper()
	out, err := w.elb.DescribeListeners(context.Background(), &elb.DescribeListenersInput{ListenerArns: []string{w.listener}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int32{}
	for _, a := range out.Listeners[0].DefaultActions {
		if a.ForwardConfig != nil {
			for _, tg := range a.ForwardConfig.TargetGroups {
				got[aws.ToString(tg.TargetGroupArn)] = aws.ToInt32(tg.Weight)
			}
		}
	}
	return fmt.Sprintf("%d/%d", got[w.tgs[0]], got[w.tgs[1]])
}

// taskSets returns the versions (externalId) of the service's task sets.
func (w *ecsWorld) taskSets(t *testing.T) []string {
	t.Helper()
	out, err := w.ecs.DescribeTaskSets(context.Background(), &awsecs.DescribeTaskSetsInput{Cluster: aws.String("prod"), Service: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, ts := range out.TaskSets {
		vs = append(vs, aws.ToString(ts.ExternalId)+":"+aws.ToString(ts.Status))
	}
	return vs
}

// pipeline is revision n of ecsPipeline for w, holding the canary's 10 %
// for interval.
func (w *ecsWorld) pipeline(url string, n int, interval string) string {
	return fmt.Sprintf(ecsPipeline, url, w.listener, w.tgs[0], w.tgs[1], strings.Join(w.subnets, ", "), w.sg, n, interval)
}

const ecsPipeline = `version: 1
stages:
  production:
    environment: production
    concurrency: production
    secrets: [{name: PROD_AWS_KEY, env: AWS_ACCESS_KEY_ID}, AWS_SECRET_ACCESS_KEY]
    deploy:
      provider: ecs
      app: web
      image: registry.example.com/web:${RUNNEL_COMMIT}
      port: 8080
      strategy: {type: canary, percent: 10, interval: %[8]s}
      health: {interval: 200ms, start_timeout: 2m}
      region: us-east-1
      endpoints: {ecs: "%[1]s", elbv2: "%[1]s"}
      ecs:
        cluster: prod
        service: web
        listener: %[2]s
        target_groups: [%[3]s, %[4]s]
        subnets: [%[5]s]
        security_groups: [%[6]s]
# %[7]d
`

// TestDeployECSPipeline: git pushes whose pipeline releases to ECS task
// sets behind an ALB listener in moto_server with a canary (10 % for 1 s):
// the first release goes to target group a (no blue), the second to b:
// the credentials are the stage's secrets (one renamed to its variable);
// the weights move 100/0 → 90/10 → 0/100 (the deploy log shows each
// step, the listener holds the last) and the old task set is removed; a
// third release cancelled at 90/10 goes back to 0/100 and is rolled_back.
func TestDeployECSPipeline(t *testing.T) {
	url := startMoto(t)
	w := newECSWorld(t, url)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	declareEnvironment(t, srv, "app", "production", []string{"main"})
	srv.setSecret("app", "PROD_AWS_KEY", "AKIAMOTOEXAMPLE")
	srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "moto-secret-access-key")
	e := &deployEnv{t: t, srv: srv, work: work}

	release := func(n int) (string, string) {
		t.Helper()
		sha := commit(t, work, w.pipeline(url, n, "1s"))
		e.trigger("app", sha)
		r := srv.waitRun(sha, 5*time.Minute, terminal)
		log := e.deployLog(r)
		if r.Status != "success" {
			t.Fatalf("release %d: run %s\ndeploy log:\n%s\nserver log:\n%s", n, r.Status, log, srv.log())
		}
		d := e.deployment(r.ID)
		if d.Result != "success" || d.Release == nil || d.Release.Provider != "ecs" || d.Release.Traffic != 100 {
			t.Errorf("release %d: deployment %+v (release %+v), want success by ecs at 100%%", n, d, d.Release)
		}
		return sha, log
	}
	v1, log1 := release(1)
	if got := w.weights(t); got != "100/0" {
		t.Errorf("after the first release the listener forwards %s (a/b), want 100/0\n%s", got, log1)
	}
	v2, log2 := release(2)
	for _, step := range []string{"[shift] 10%", "[shift] 100%", "[finish]"} {
		if !strings.Contains(log2, step) {
			t.Errorf("second release log lacks %q:\n%s", step, log2)
		}
	}
	if got := w.weights(t); got != "0/100" {
		t.Errorf("after the second release the listener forwards %s (a/b), want 0/100", got)
	}
	if got := w.taskSets(t); len(got) != 1 || !strings.HasPrefix(got[0], v2+":") {
		t.Errorf("task sets after the second release: %v, want only %s (%s removed)", got, v2, v1)
	}

	// Cancelled while green takes 10 %: the agent routes everything back
	// to blue and removes green; the deployment ends rolled_back, restoring
	// the second release (docs/deploy.md#cancelling-a-release).
	d2 := e.deployment(srv.waitRun(v2, time.Minute, terminal).ID)
	v3 := commit(t, work, w.pipeline(url, 3, "60s"))
	e.trigger("app", v3)
	e.waitTraffic(v3, 10)
	r3 := srv.waitRun(v3, time.Minute, func(run) bool { return true })
	if code, b := srv.api("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r3.ID)); code != 200 {
		t.Fatalf("cancel run %d: %d %s", r3.ID, code, b)
	}
	d3 := e.deploymentEnded(r3.ID)
	if d3.Result != "rolled_back" || d3.RollsBack != d2.ID || d3.Release == nil || d3.Release.Outcome != "rolled_back" {
		t.Errorf("cancelled release: deployment %+v (release %+v), want rolled_back restoring %d\ndeploy log:\n%s", d3, d3.Release, d2.ID, e.deployLog(r3))
	}
	if got := w.weights(t); got != "0/100" {
		t.Errorf("after the cancelled release the listener forwards %s (a/b), want 0/100", got)
	}
	if got := w.taskSets(t); len(got) != 1 || !strings.HasPrefix(got[0], v2+":") {
		t.Errorf("task sets after the cancelled release: %v, want only %s", got, v2)
	}
}

// TestDeployECSAgentKilled: the agent releasing v2 to ECS task sets in
// moto_server is SIGKILLed while green takes 10 % (listener 90/10). The
// stage is re-delivered to another agent: its release routes everything
// to blue, removes the dead release's green and releases v2 again,
// ending the same deployment with the listener at 0/100 and v2 the only
// task set.
func TestDeployECSAgentKilled(t *testing.T) {
	url := startMoto(t)
	w := newECSWorld(t, url)
	c := newCluster(t, []string{"ecs-a", "ecs-b"}, "--lease-timeout", "15s")
	bare, work := repoSetup(t, t.TempDir())
	c.addRepo("app", bare)
	declareEnvironment(t, c.srv, "app", "production", []string{"main"})
	c.srv.setSecret("app", "PROD_AWS_KEY", "AKIAMOTOEXAMPLE")
	c.srv.setSecret("app", "AWS_SECRET_ACCESS_KEY", "moto-secret-access-key")
	e := &deployEnv{t: t, srv: c.srv, work: work}
	a := c.startAgent("ecs-a", "", 1)
	c.waitAgents("ecs-a")

	v1 := commit(t, work, w.pipeline(url, 1, "1s"))
	e.trigger("app", v1)
	if r := c.srv.waitRun(v1, 5*time.Minute, terminal); r.Status != "success" {
		t.Fatalf("first release: run %s\nagent log:\n%s", r.Status, a.log())
	}
	v2 := commit(t, work, w.pipeline(url, 2, "20s"))
	e.trigger("app", v2)
	before := e.waitTraffic(v2, 10)
	if got := w.weights(t); got != "90/10" {
		t.Fatalf("listener at the kill: %s (a/b), want 90/10", got)
	}
	a.stop(syscall.SIGKILL)
	c.startAgent("ecs-b", "", 1)

	r := c.srv.waitRun(v2, 10*time.Minute, terminal)
	log := e.deployLog(r)
	if r.Status != "success" || r.Stages[0].Attempt < 2 || r.Stages[0].Agent != "ecs-b" {
		t.Fatalf("run after the kill: %s, stage attempt %d on %q; want success, attempt ≥ 2 on ecs-b\ndeploy log:\n%s",
			r.Status, r.Stages[0].Attempt, r.Stages[0].Agent, log)
	}
	d := e.deployment(r.ID)
	if d.ID != before.ID || d.Result != "success" || d.Release.Traffic != 100 || d.Release.From != v1 {
		t.Errorf("deployment after the kill = %+v (release %+v), want the same deployment %d ended success at 100%% from %s", d, d.Release, before.ID, v1)
	}
	if got := w.weights(t); got != "0/100" {
		t.Errorf("listener after the re-delivered release: %s (a/b), want 0/100", got)
	}
	if got := w.taskSets(t); len(got) != 1 || got[0] != v2+":PRIMARY" {
		t.Errorf("task sets after the re-delivered release: %v, want only %s, primary", got, v2)
	}
}
