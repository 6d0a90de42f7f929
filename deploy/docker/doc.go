// Package docker is the deploy.Provider for a plain Docker host: the blue
// and the green version of an app run as two containers on a user-defined
// bridge network, labelled runnel.deploy.app, runnel.deploy.color and
// runnel.deploy.version, and the traffic switch is Proxy, a weighted
// reverse proxy written with net/http/httputil that listens on a host port
// and forwards to the containers' addresses on the network.
//
// The proxy runs inside the process that owns the Provider (for now the
// runnel agent): when that process exits, the app is unreachable through
// the proxy although its container keeps running; the next Provider adopts
// the running container on its first release (see Provider).
package docker
