#!/usr/bin/env bash
# Checks, before `make test` does anything, that this machine has what the
# tests need, and stops at once naming each missing part with the Debian
# package that brings it. Run as root (as .ci/run does) it installs the
# missing packages with apt-get and starts dockerd when no Docker engine
# answers, instead of stopping.
#
# Always needed: Go, git, a Docker engine and Debian's busybox-static (the
# test images are made from /bin/busybox). Needed when CI is set, where a
# test whose part is missing fails instead of skipping: Chromium (UI
# browser tests), Prometheus (dashboard tests) and PostgreSQL (store and
# cron tests; .ci/run starts it). Outside CI their absence is only
# reported: those tests skip.
#
# RUNNEL_PREREQ=warn reports what is missing and goes on. Uses only bash
# builtins besides the commands it checks, so tests can run it with a
# PATH of stand-ins (PREREQ_UID stands in for the user id).
set -uo pipefail

busybox=${BUSYBOX:-/bin/busybox}
uid=${PREREQ_UID:-$(id -u)}

missing=()   # "package|why"
unfixable=() # parts apt-get cannot bring
skipped=()

have() { command -v "$1" >/dev/null 2>&1; }
need() { # need PACKAGE WHY: a part that is needed here
	missing+=("$1|$2")
}
optional() { # optional PACKAGE WHY: needed only in CI
	if [ -n "${CI:-}" ]; then
		need "$1" "$2"
	else
		skipped+=("$1 ($2)")
	fi
}

have go || unfixable+=("Go 1.26 toolchain (go.dev/dl; Debian's golang is too old)")
have git || need git "git, for the repositories the tests push to"
have make || need make "make, which runs the tests"
# The images need a statically linked busybox: Debian's busybox package
# has a /bin/busybox too, which does not run in an empty image.
if [ ! -x "$busybox" ] || { [ -z "${BUSYBOX:-}" ] && have dpkg && ! dpkg -s busybox-static >/dev/null 2>&1; }; then
	need busybox-static "a static $busybox, from which the test images are made"
fi
if ! have docker; then
	need docker.io "the Docker engine every step container runs on"
fi
have chromium || have chromium-browser || have google-chrome || optional chromium "headless browser tests of the UI"
have prometheus || optional prometheus "dashboard queries checked against a real Prometheus"
if [ -n "${CI:-}" ] && [ -z "${RUNNEL_TEST_POSTGRES:-}" ] && ! have pg_ctlcluster; then
	need postgresql "the PostgreSQL store and cron tests"
fi

for s in "${skipped[@]}"; do
	printf 'prereq: %s missing: those tests will skip (CI is not set)\n' "$s" >&2
done

packages=()
for m in "${missing[@]}"; do
	packages+=("${m%%|*}")
done

if [ ${#unfixable[@]} -gt 0 ] || { [ ${#packages[@]} -gt 0 ] && [ "$uid" != 0 ]; }; then
	{
		printf 'make test cannot start: missing\n'
		for u in "${unfixable[@]}"; do
			printf '  %s\n' "$u"
		done
		for m in "${missing[@]}"; do
			printf '  %-16s %s\n' "${m%%|*}" "${m#*|}"
		done
		if [ ${#packages[@]} -gt 0 ]; then
			printf 'Install them (as root: apt-get install -y %s),\nor run make test as root to have them installed.\n' "${packages[*]}"
		fi
	} >&2
	[ "${RUNNEL_PREREQ:-}" = warn ] && exit 0
	exit 1
fi

if [ ${#packages[@]} -gt 0 ]; then
	printf 'prereq: installing %s\n' "${packages[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || exit 1
	apt-get install -y -qq "${packages[@]}" >/dev/null || exit 1
fi

if ! docker info >/dev/null 2>&1; then
	if [ "$uid" != 0 ]; then
		printf 'make test cannot start: no Docker engine answers (docker info); start dockerd, or run make test as root to start it\n' >&2
		[ "${RUNNEL_PREREQ:-}" = warn ] && exit 0
		exit 1
	fi
	printf 'prereq: no Docker engine answers; starting dockerd\n' >&2
	dlog=${PREREQ_DOCKERD_LOG:-/tmp/dockerd.log}
	(dockerd >"$dlog" 2>&1 &)
	for ((i = 0; i < 60; i++)); do
		docker info >/dev/null 2>&1 && break
		sleep 1
	done
	if ! docker info >/dev/null 2>&1; then
		printf 'dockerd did not start; see %s\n' "$dlog" >&2
		exit 1
	fi
fi
exit 0
