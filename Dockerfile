# The runnel image: one static binary. Base images are build arguments so
# machines without a registry can build it from local images, e.g.
#   docker build --build-arg GO_IMAGE=runnel-test/go:latest \
#                --build-arg BASE_IMAGE=runnel-test/busybox:latest -t runnel .
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/runnel ./cmd/runnel \
 && mkdir -p /out/data

FROM ${BASE_IMAGE}
COPY --from=build /out/runnel /usr/local/bin/runnel
# The data directory (SQLite, JetStream, logs, artifacts) belongs to the
# unprivileged user the server runs as. Mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/runnel
ENV RUNNEL_DATA=/var/lib/runnel
USER 65532:65532
EXPOSE 8080 4222
VOLUME ["/var/lib/runnel"]
ENTRYPOINT ["/usr/local/bin/runnel"]
CMD ["server"]
