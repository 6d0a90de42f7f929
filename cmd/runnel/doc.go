// Command runnel is the single Runnel binary: `runnel lint` checks a
// .pipeline.yml, `runnel run` executes it on this machine exactly as an
// agent would, and `runnel version` prints the build. The server, agent,
// hook and repo commands live in files of their own beside these. This
// package is the composition root: it parses flags and wires concrete
// parts together; the logic lives in the packages it imports.
package main
