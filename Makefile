# The test command the README gives and .ci/run calls.
GO ?= go
# Files tests keep (t.ArtifactDir: the UI's browser screenshots) go to
# test-artifacts/_artifacts/.
ARTIFACTS ?= $(CURDIR)/test-artifacts
TESTFLAGS ?= -count=1 -timeout 30m -artifacts -outputdir $(ARTIFACTS)

.PHONY: build test prereq test-images vet bench lint-pipeline

build:
	CGO_ENABLED=0 $(GO) build -o bin/runnel ./cmd/runnel

# prereq: stop at once naming each missing package (as root: install them).
prereq:
	./scripts/prereq.sh

test-images: prereq
	./scripts/test-images.sh

vet:
	$(GO) vet ./...

# test: vet, then every package's tests against the real Docker engine,
# NATS, SQLite, git and (when RUNNEL_TEST_POSTGRES is set) PostgreSQL.
test: prereq test-images vet
	mkdir -p $(ARTIFACTS)
	$(GO) test $(TESTFLAGS) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/...
