package docker

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"testing"
)

// TestMain fails the run when the tests left any container, network or
// volume behind: every owner used here starts with test-PID- (or is a
// local-HOST-PID owner of TestPruneDeadLocal, torn down there).
func TestMain(m *testing.M) {
	code := m.Run()
	if left := leftovers(fmt.Sprintf("test-%d-", os.Getpid())); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "tests left Docker resources behind: %v\n", left)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers(ownerPrefix string) []string {
	cli, err := NewClient()
	if err != nil {
		return nil
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Ping(ctx); err != nil {
		return nil
	}
	f := filters.NewArgs(filters.Arg("label", LabelOwner))
	mine := func(l map[string]string) bool { return strings.HasPrefix(l[LabelOwner], ownerPrefix) }
	var left []string
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			if mine(c.Labels) {
				left = append(left, "container "+strings.Join(c.Names, ","))
			}
		}
	}
	if ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range ns {
			if mine(n.Labels) {
				left = append(left, "network "+n.Name)
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f}); err == nil {
		for _, v := range vs.Volumes {
			if mine(v.Labels) {
				left = append(left, "volume "+v.Name)
			}
		}
	}
	return left
}
