#!/usr/bin/env bash
# Every benchmark the project records in docs/BENCHMARKS.md, in one run.
# Each section prints the command that produced it.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "## render: renders per second"
echo '$ go test -run "^$" -bench . -benchmem -count 5 ./render/'
go test -run '^$' -bench . -benchmem -count 5 ./render/
echo
echo "## images: seed build in-process"
echo '$ go test -run "^$" -bench . -benchmem -count 3 ./images/'
go test -run '^$' -bench . -benchmem -count 3 ./images/
echo
echo "## hardbake iso vs cloud-localds (whole process, one hyperfine run)"
bash scripts/bench-seed.sh
echo
echo "## hardbaked: orders vs raw dqlite inserts, seed.iso vs cloud-localds (one run)"
echo '$ go test -tags libsqlite3 -run "^$" -bench . -benchtime 5s ./service'
go test -tags libsqlite3 -run '^$' -bench . -benchtime 5s ./service
echo
echo "## agent size"
bash scripts/build-agent.sh "$(mktemp -d)" "-s -w"
