#!/usr/bin/env bash
# Runs atedb and NATS JetStream through the same workloads, RUNS times,
# interleaved (atedb, NATS sync_interval: always, NATS default, then again),
# so that load from elsewhere on the machine falls on all of them alike,
# and prints one table of medians with the ratios atedb / NATS, then the
# issue's targets with atedb's medians beside the peers'.
#
# Usage: bench/compare.sh [flags common to both, e.g. -smoke or -duration 5s]
# Environment:
#   RUNS  rounds (default 3)
#   ATEDB_ARGS  extra arguments for the atedb side only (e.g. "-except manychains")
#   OUT   directory for binaries, JSON lines and the comparison (default: a new temp dir)
#
# NATS with sync_interval: always skips replay: filling 1,000,000 events at
# its durable rate takes minutes, and reading does not depend on the sync
# mode; NATS default runs every workload.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/atedb-compare.XXXXXX")}
mkdir -p "$out/bin"
echo "results in $out"

go build -o "$out/bin/bench" ./bench
go build -o "$out/bin/atedb" ./cmd/atedb
(cd bench/peers/nats && go build -o "$out/bin/natsbench" .)

status=0
for i in $(seq "$runs"); do
  echo "== round $i of $runs: atedb"
  # shellcheck disable=SC2086
  "$out/bin/bench" all -atedb "$out/bin/atedb" -json "$out/atedb.jsonl" ${ATEDB_ARGS:-} "$@" || status=1
  echo "== round $i of $runs: NATS JetStream, sync_interval: always"
  "$out/bin/natsbench" sync1 closed64 pipelined64 fanout -sync always -json "$out/nats.jsonl" "$@" || status=1
  echo "== round $i of $runs: NATS JetStream, default sync"
  "$out/bin/natsbench" all -sync default -json "$out/nats.jsonl" "$@" || status=1
done

echo
"$out/bin/bench" compare "$out/atedb.jsonl" "$out/nats.jsonl" | tee "$out/comparison.txt"
if [ "$status" -ne 0 ]; then
  echo "some workloads failed; see the ERROR lines above" >&2
fi
exit "$status"
