// Package logstore keeps step logs of runs as append-only files under
// DIR/<run>/<stage>/<attempt>/<step>.log, one file per step attempt. Chunks
// arrive with a sequence number and are written in sequence order (late
// duplicates are dropped, early chunks wait for the gap to close); no
// database row is written per line. Live followers get a reader that first
// replays the file and then follows it until the step is finished. A log
// whose writer ended with chunks missing stays open for them (they come
// again after a failed store) for a grace period, then closes with the
// gaps marked in it. A log keeps at most a cap of bytes (SetStepMax),
// counted in sequence order; the rest is taken and dropped.
package logstore
