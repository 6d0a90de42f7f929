#!/usr/bin/env bash
# Installs versitygw, the S3-compatible server the artifact/s3 tests run
# against, when it is not already installed, and prints its path.
#
#   export RUNNEL_TEST_VERSITYGW=$(scripts/versitygw.sh)
#
# Looks in $RUNNEL_TEST_VERSITYGW, then PATH, then $(go env GOPATH)/bin; installs
# into $(go env GOPATH)/bin with `go install` (about 1.5 minutes cold).
set -euo pipefail

version=v1.8.0

if [ -n "${RUNNEL_TEST_VERSITYGW:-}" ] && [ -x "$RUNNEL_TEST_VERSITYGW" ]; then
	echo "$RUNNEL_TEST_VERSITYGW"
	exit 0
fi
if p=$(command -v versitygw 2>/dev/null); then
	echo "$p"
	exit 0
fi
bin="$(go env GOPATH)/bin/versitygw"
if [ ! -x "$bin" ]; then
	echo "installing versitygw $version into $(dirname "$bin")" >&2
	GOBIN="$(dirname "$bin")" go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
fi
echo "$bin"
