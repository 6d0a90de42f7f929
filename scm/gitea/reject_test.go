package gitea

import (
	"net/http"
	"testing"

	"github.com/runnel-ci/runnel/scm"
	"github.com/runnel-ci/runnel/scm/scmtest"
)

func TestStatusReporterRejected(t *testing.T) {
	scmtest.StatusRejections(t, func(url string, c *http.Client) (scm.StatusReporter, error) {
		return NewStatusReporter(url, "t", c)
	})
}
