package awsfake

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cd "github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
)

// TestSDKRoundTrip: the real SDK client decodes the Server's documents,
// epoch-second timestamps and typed errors, and its calls are recorded
// with the signing access key.
func TestSDKRoundTrip(t *testing.T) {
	s := New(t)
	created := time.Date(2026, 12, 5, 19, 0, 0, 250e6, time.UTC)
	s.Handle("CodeDeploy_20141006.GetDeployment", func(r *Request) (any, error) {
		var in struct {
			DeploymentID string `json:"deploymentId"`
		}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		if in.DeploymentID != "d-1" {
			return nil, Errorf("DeploymentDoesNotExistException", "deployment %s does not exist", in.DeploymentID)
		}
		return map[string]any{"deploymentInfo": map[string]any{"deploymentId": "d-1", "status": "InProgress", "createTime": Epoch(created)}}, nil
	})
	c := cd.NewFromConfig(s.Config("eu-west-1", "AKIDTEST"))
	ctx := context.Background()

	out, err := c.GetDeployment(ctx, &cd.GetDeploymentInput{DeploymentId: aws.String("d-1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.DeploymentInfo; got.Status != cdtypes.DeploymentStatusInProgress || !got.CreateTime.Equal(created) {
		t.Errorf("got status %s created %v, want InProgress %v", got.Status, got.CreateTime, created)
	}

	_, err = c.GetDeployment(ctx, &cd.GetDeploymentInput{DeploymentId: aws.String("d-2")})
	var nf *cdtypes.DeploymentDoesNotExistException
	if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "d-2") {
		t.Errorf("got %v, want a DeploymentDoesNotExistException about d-2", err)
	}

	_, err = c.StopDeployment(ctx, &cd.StopDeploymentInput{DeploymentId: aws.String("d-1")})
	if err == nil || !strings.Contains(err.Error(), "UnknownOperationException") {
		t.Errorf("unregistered operation: got %v, want UnknownOperationException", err)
	}

	calls := s.Calls("GetDeployment")
	if len(calls) != 2 || calls[0].AccessKey != "AKIDTEST" || calls[0].Error != "" || calls[1].Error != "DeploymentDoesNotExistException" {
		t.Errorf("got calls %+v, want two GetDeployment by AKIDTEST, the second answered DeploymentDoesNotExistException", calls)
	}
}

// TestEnvelope: requests that the SDK would never send are refused the
// way AWS refuses them.
func TestEnvelope(t *testing.T) {
	s := New(t)
	s.Handle("CodeDeploy_20141006.ListApplications", func(*Request) (any, error) { return nil, nil })
	tests := []struct {
		name, ctype, auth string
		status            int
		typ               string
	}{
		{"ok", ContentType, "AWS4-HMAC-SHA256 Credential=AK/20261205/eu-west-1/codedeploy/aws4_request, SignedHeaders=host, Signature=00", 200, ""},
		{"plain json", "application/json", "AWS4-HMAC-SHA256 Credential=AK/x", 400, "SerializationException"},
		{"unsigned", ContentType, "", 403, "MissingAuthenticationTokenException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader("{}"))
			req.Header.Set("Content-Type", tt.ctype)
			req.Header.Set("X-Amz-Target", "CodeDeploy_20141006.ListApplications")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.status)
			}
			calls := s.Calls("")
			if last := calls[len(calls)-1]; last.Error != tt.typ {
				t.Errorf("got error type %q, want %q", last.Error, tt.typ)
			}
		})
	}
}

// TestWaitAndClock: Wait returns once a call makes its condition true;
// Advance moves Now.
func TestWaitAndClock(t *testing.T) {
	s := New(t)
	s.Handle("CodeDeploy_20141006.ListApplications", func(*Request) (any, error) {
		return map[string]any{"applications": []string{"web"}}, nil
	})
	c := cd.NewFromConfig(s.Config("eu-west-1", "AK"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.ListApplications(ctx, &cd.ListApplicationsInput{})
		errc <- err
	}()
	if err := s.Wait(ctx, func() bool { return len(s.calls) == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	before := s.Now()
	s.Advance(time.Hour)
	if d := s.Now().Sub(before); d < time.Hour {
		t.Errorf("got clock moved by %s, want at least 1h", d)
	}
}
