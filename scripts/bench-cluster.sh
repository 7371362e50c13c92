#!/usr/bin/env bash
# The cluster benchmark of docs/BENCHMARKS.md, in one run: orders/s through
# one node and a 3-node cluster against raw dqlite inserts on the same node
# and cluster, then failover times over 10 SIGKILLs of the leader under load.
# Real hardbaked processes on 127.0.0.1 (cmd/hardbaked/clustertest).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
HARDBAKE_CLUSTER_BENCH=1 HARDBAKE_CLUSTER_BENCH_OUT="$out" \
	go test -tags libsqlite3 -count=1 -timeout 20m -run '^TestClusterBenchmark$' -v ./cmd/hardbaked/clustertest/ >&2
cat "$out"
rm -f "$out"
