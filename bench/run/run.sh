#!/bin/sh
# Fixed start-up time, peak memory and log throughput of `runnel run`,
# each next to the raw operation it wraps. Results and the way to read
# them are in docs/benchmarks.md, section "runnel run".
#
#   bench/run/run.sh            # from the repository root
#   RUNNEL=/path/to/runnel bench/run/run.sh   # measure a given binary
#
# Needs hyperfine (apt-get install hyperfine), GNU time (/usr/bin/time),
# and for the Docker part a Docker engine with runnel-test/busybox:latest
# (scripts/test-images.sh). RUNS (default 30) sets hyperfine's runs for
# the start-up cases, RSS_RUNS (default 10) the runs of /usr/bin/time.
set -eu

RUNS=${RUNS:-30}
RSS_RUNS=${RSS_RUNS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "${RUNNEL:-}" ]; then
	go build -o "$work/runnel" ./cmd/runnel
	RUNNEL=$work/runnel
fi

# pipeline DIR IMAGE SCRIPT writes a one-stage, one-step pipeline.
pipeline() {
	mkdir -p "$1"
	cat >"$1/.pipeline.yml" <<YAML
version: 1
stages:
  s:
    image: $2
    steps:
      - name: step
        run: "$3"
YAML
}
pipeline "$work/true" runnel-test/busybox:latest true
pipeline "$work/seq" runnel-test/busybox:latest "seq 1000000"

# peak NAME COMMAND...: the largest of RSS_RUNS maximum resident set sizes
# (ru_maxrss of the command and the children it waited for) in MiB.
peak() {
	name=$1
	shift
	max=0
	i=0
	while [ "$i" -lt "$RSS_RUNS" ]; do
		kb=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1)
		[ "$kb" -gt "$max" ] && max=$kb
		i=$((i + 1))
	done
	echo "peak RSS  $name: $((max / 1024)).$(((max % 1024) * 10 / 1024)) MiB"
}

echo "== start-up, local backend"
hyperfine -N --warmup 3 --runs "$RUNS" \
	-n "runnel run --backend local" "$RUNNEL run -C $work/true --backend local" \
	-n "sh -c true" "sh -c true"
peak "runnel run --backend local" "$RUNNEL" run -C "$work/true" --backend local
peak "sh -c true" sh -c true

echo "== log throughput, local backend (1,000,000 lines, stdout to a file)"
hyperfine -N --warmup 1 --runs 10 --output "$work/out.txt" \
	-n "runnel run --backend local" "$RUNNEL run -C $work/seq --backend local" \
	-n "sh -c 'seq 1000000'" "sh -c 'seq 1000000'"
peak "runnel run --backend local, seq 1000000" "$RUNNEL" run -C "$work/seq" --backend local

if docker image inspect runnel-test/busybox:latest >/dev/null 2>&1; then
	echo "== start-up, docker backend"
	hyperfine -N --warmup 2 --runs "$((RUNS / 3 + 1))" \
		-n "runnel run --backend docker" "$RUNNEL run -C $work/true --backend docker --pull never" \
		-n "docker run --rm runnel-test/busybox true" "docker run --rm runnel-test/busybox:latest true"
	peak "runnel run --backend docker" "$RUNNEL" run -C "$work/true" --backend docker --pull never
	peak "docker run --rm (CLI process)" docker run --rm runnel-test/busybox:latest true
else
	echo "== docker backend skipped: no engine or no runnel-test/busybox:latest"
fi
