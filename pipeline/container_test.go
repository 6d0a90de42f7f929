package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const policyFile = `version: 1
stages:
  build:
    image: runnel-test/busybox
    container:
      privileged: true
    services:
      - name: db
        image: postgres
        container:
          network: host
    steps:
      - name: a
        run: "true"
        container:
          volumes:
            - /var/run/docker.sock:/var/run/docker.sock
            - /etc:/host-etc:ro
          cap_add: [NET_ADMIN]
          devices: [/dev/fuse]
          pid: host
`

// TestCheckPolicy: every request the repository is not granted is an error
// at its own line and column; granted ones are not reported.
func TestCheckPolicy(t *testing.T) {
	p, err := Parse("p.yml", []byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{
		"p.yml:6:7: not-allowed: stage build: privileged: true needs the container permission privileged",
		"p.yml:11:20: not-allowed: service db: network: host needs the container permission host-network",
		"p.yml:17:15: not-allowed: step a: volume \"/var/run/docker.sock:/var/run/docker.sock\" needs the container permission docker-socket",
		"p.yml:18:15: not-allowed: step a: volume \"/etc:/host-etc:ro\" needs the container permission host-mounts",
		"p.yml:19:21: not-allowed: step a: cap_add \"NET_ADMIN\" needs the container permission cap-add",
		"p.yml:20:21: not-allowed: step a: device \"/dev/fuse\" needs the container permission devices",
		"p.yml:21:16: not-allowed: step a: pid: host needs the container permission host-pid",
	}
	tests := []struct {
		name    string
		allowed []Permission
		want    []string
	}{
		{"nothing allowed", nil, all},
		{"socket and privileged allowed", []Permission{PermDockerSocket, PermPrivileged}, []string{all[1], all[3], all[4], all[5], all[6]}},
		{"everything allowed", Permissions, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CheckPolicy(tt.allowed)
			var got []string
			var ds Diagnostics
			if errors.As(err, &ds) {
				for _, d := range ds {
					got = append(got, d.String())
				}
			} else if err != nil {
				t.Fatalf("CheckPolicy: %T %v", err, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("diagnostic %d:\n got %s\nwant %s...", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestCheckContainers is the agent's check of a compiled stage: stage
// settings reach every step, step settings override them, services are
// checked on their own.
func TestCheckContainers(t *testing.T) {
	p, err := Parse("p.yml", []byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan(Event{Kind: EventPush, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Stages[0]
	tests := []struct {
		allowed []Permission
		want    []Permission
	}{
		{nil, []Permission{PermPrivileged, PermDockerSocket, PermHostMounts, PermHostPID, PermDevices, PermCapAdd, PermHostNetwork}},
		{[]Permission{PermPrivileged, PermHostMounts, PermDockerSocket}, []Permission{PermHostPID, PermDevices, PermCapAdd, PermHostNetwork}},
		{Permissions, nil},
	}
	for _, tt := range tests {
		var got []Permission
		for _, r := range CheckContainers(st, tt.allowed) {
			got = append(got, r.Permission)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("CheckContainers(allowed %v) = %v, want %v", tt.allowed, got, tt.want)
		}
	}
	// A crafted stage with no steps is still checked.
	if r := CheckContainers(&Stage{ID: "x", Container: &Container{Network: "host"}}, nil); len(r) != 1 || r[0].String() != "stage: network: host needs the container permission host-network" {
		t.Errorf("stage without steps: %v", r)
	}
}

func TestStepContainer(t *testing.T) {
	stage := &Container{User: "1000", Volumes: []string{"/a:/a"}, Network: "none"}
	tests := []struct {
		name        string
		stage, step *Container
		want        *Container
	}{
		{"neither", nil, nil, nil},
		{"stage only", stage, nil, stage},
		{"step only", nil, &Container{User: "root"}, &Container{User: "root"}},
		{"step overrides fields", stage, &Container{User: "root", CapAdd: []string{"NET_ADMIN"}},
			&Container{User: "root", Volumes: []string{"/a:/a"}, Network: "none", CapAdd: []string{"NET_ADMIN"}}},
		{"empty list clears", stage, &Container{Volumes: []string{}}, &Container{User: "1000", Volumes: []string{}, Network: "none"}},
		{"privileged adds up", &Container{Privileged: true}, &Container{User: "1"}, &Container{Privileged: true, User: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := (&Stage{Container: tt.stage}).StepContainer(&Step{Container: tt.step})
			if (got == nil) != (tt.want == nil) || got != nil && !equalContainer(*got, *tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equalContainer(a, b Container) bool {
	return a.User == b.User && a.Privileged == b.Privileged && slices.Equal(a.Volumes, b.Volumes) && a.Network == b.Network &&
		a.PID == b.PID && slices.Equal(a.Devices, b.Devices) && slices.Equal(a.CapAdd, b.CapAdd)
}

func TestParsePermissions(t *testing.T) {
	tests := []struct {
		in      []string
		want    []Permission
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"none"}, nil, ""},
		{[]string{"privileged", " host-network", "privileged"}, []Permission{PermPrivileged, PermHostNetwork}, ""},
		{[]string{"root"}, nil, `unknown container permission "root"`},
		{[]string{"none", "privileged"}, nil, `unknown container permission "none"`},
	}
	for _, tt := range tests {
		got, err := ParsePermissions(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePermissions(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePermissions(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestMountNeeds(t *testing.T) {
	for src, want := range map[string]Permission{
		"/var/run/docker.sock":        PermDockerSocket,
		"/run/docker.sock":            PermDockerSocket,
		"/var/run/../run/docker.sock": PermDockerSocket,
		"/home/u/.docker/docker.sock": PermDockerSocket,
		"/var/run":                    PermHostMounts,
		"/":                           PermHostMounts,
	} {
		if got := mountNeeds(src); got != want {
			t.Errorf("mountNeeds(%s) = %s, want %s", src, got, want)
		}
	}
}
