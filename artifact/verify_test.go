package artifact_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/runnel-ci/runnel/artifact"
)

func TestVerifyReader(t *testing.T) {
	sdkErr := errors.New("sdk: checksum did not match")
	good := hexSum([]byte("content"))
	for _, tc := range []struct {
		name     string
		r        io.Reader
		sum      string
		size     int64
		checksum bool  // want ErrChecksum
		other    error // want this error too
	}{
		{"match", strings.NewReader("content"), good, 7, false, nil},
		{"unknown size", strings.NewReader("content"), good, -1, false, nil},
		{"flipped byte", strings.NewReader("contenT"), good, 7, true, nil},
		{"short", strings.NewReader("conten"), good, 7, true, nil},
		{"long", strings.NewReader("contents"), good, 7, true, nil},
		{"source error after all bytes, bad content", io.MultiReader(strings.NewReader("contenT"), iotest.ErrReader(sdkErr)), good, 7, true, sdkErr},
		{"source error after all bytes, good content", io.MultiReader(strings.NewReader("content"), iotest.ErrReader(sdkErr)), good, 7, false, sdkErr},
		{"source error midway", io.MultiReader(strings.NewReader("con"), iotest.ErrReader(sdkErr)), good, 7, false, sdkErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := io.ReadAll(artifact.VerifyReader(io.NopCloser(tc.r), "k", tc.sum, tc.size))
			if got := errors.Is(err, artifact.ErrChecksum); got != tc.checksum {
				t.Errorf("error %v: ErrChecksum %v, want %v", err, got, tc.checksum)
			}
			if tc.other != nil && !errors.Is(err, tc.other) {
				t.Errorf("error %v does not wrap %v", err, tc.other)
			}
			if !tc.checksum && tc.other == nil && err != nil {
				t.Errorf("error %v, want nil", err)
			}
		})
	}
}
