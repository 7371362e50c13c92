#!/usr/bin/env bash
# Runs every Go fuzz target in the repository briefly, one at a time.
# Usage: bash scripts/fuzz.sh [FUZZTIME]   (default 20000x; e.g. 100000x, 60s)
# The default is a count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" failure when the
# deadline races a busy worker (go.dev/issue/75804, fixed in Go 1.27), which
# failed CI on a loaded machine with no failing input. A count has no deadline.
# Targets are discovered by grepping *_test.go for "func FuzzXxx(", so new
# targets are picked up without editing this script. Set FUZZMINIMIZETIME to
# change how long a new input is minimized (default 100x: brief runs should
# spend their time fuzzing, and an unbounded minimization can outlast -fuzztime).
set -euo pipefail

fuzztime="${1:-20000x}"
minimize="${FUZZMINIMIZETIME:-100x}"
cd "$(dirname "$0")/.."

mapfile -t hits < <(grep -rn --include='*_test.go' --exclude-dir=.git --exclude-dir=.cache --exclude-dir=testdata --exclude-dir=vendor \
	-E '^func Fuzz[A-Za-z0-9_]*\(' . 2>/dev/null | sort)
if [ "${#hits[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

failed=()
for hit in "${hits[@]}"; do
	file="${hit%%:*}"
	name="$(sed -E 's/^[^:]*:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$hit")"
	pkg="./$(dirname "${file#./}")"
	echo "=== fuzz $pkg $name ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg"; then
		failed+=("$pkg $name")
	fi
done

if [ "${#failed[@]}" -gt 0 ]; then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: ${#hits[@]} target(s) passed"
