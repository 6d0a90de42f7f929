// Package logstore keeps step logs of runs as append-only files under
// DIR/<run>/<stage>/<attempt>/<step>.log, one file per step attempt. Chunks
// arrive with a sequence number and are written in sequence order (late
// duplicates are dropped, early chunks wait for the gap to close); no
// database row is written per line. Live followers get a reader that first
// replays the file and then follows it until the step is finished.
package logstore
