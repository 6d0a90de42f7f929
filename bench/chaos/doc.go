// Command chaos is the crash-safety harness of issue 8: a real `runnel
// server` (--no-agent) and several `runnel agent` processes on the Docker
// engine, a bare repository with the post-receive hook, and a pipeline
// with parallel stages, a need and a concurrency group whose steps print a
// known number of lines. It pushes while SIGKILLing a random agent every
// ~10 s and the server every ~60 s, and fires bursts of simultaneous
// generic-hook deliveries with a server SIGKILL 10-100 ms into each burst.
// At the end it prints lost, stuck, duplicate, doubled and falsely failed
// runs, stages re-run while their agent was alive, stored logs missing
// lines, Docker resources left behind and the time from an agent's
// SIGKILL to its stage's next attempt; it exits 1 unless lost, stuck,
// duplicates, doubled and falsely failed are all zero.
//
//	go run ./bench/chaos                          # short: about 3 minutes
//	go run ./bench/chaos -pushes 300 -bursts 10   # long (docs/benchmarks.md)
//
// Ground truth comes from outside the server: Docker's container events
// (labels runnel.run, runnel.stage, runnel.attempt, runnel.pid) for what
// ran where and when, the hook's answers and the deliveries' HTTP answers
// for what was accepted. Needs Docker and runnel-test/busybox:latest
// (scripts/test-images.sh).
package main
