#!/usr/bin/env bash
# Smoke run of the benchmark harness, for CI (.ci/run calls it): every
# workload for about a second against atedb, the NATS JetStream peer's
# workloads likewise, and the comparison of the two. It checks that the
# harness still works end to end; the figures of such short runs mean little.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atedb-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "-- atedb"
go run ./bench all -smoke -limits 200ms -progress off -dir "$tmp" -json "$tmp/atedb.jsonl"

echo "-- NATS JetStream peer (bench/peers/nats, its own module)"
(cd bench/peers/nats && go vet . && go run . all -smoke -limits 0 -progress off -dir "$tmp" -json "$tmp/nats.jsonl")

echo "-- comparison"
go run ./bench compare "$tmp/atedb.jsonl" "$tmp/nats.jsonl"
