#!/usr/bin/env bash
# bench-seed.sh: whole-process wall time per seed and image size of
# `hardbake iso` against Debian's `cloud-localds` (cloud-image-utils), on the
# same user-data and meta-data, in one hyperfine run.
#
# Fairness: `hardbake render` runs once to produce user-data and meta-data;
# cloud-localds then only packs those two files, while `hardbake iso` is timed
# doing everything (decode profile and order, render, build, fsync, rename)
# from the same order. The agent is referenced by URL, so neither seed carries
# a binary. The script checks that hardbake's seed holds byte-identical
# user-data and meta-data before it times anything.
#
# Usage: scripts/bench-seed.sh            (HARDBAKE=path RUNS=n to override)
# Needs: hyperfine, cloud-localds, jq, isoinfo, ssh-keygen, go (if bin/hardbake
# is missing, it is built into the temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}
WARMUP=${WARMUP:-10}

for tool in hyperfine cloud-localds jq isoinfo ssh-keygen; do
	command -v "$tool" >/dev/null || { echo "bench-seed: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-seed.XXXXXX")
trap 'rm -rf "$work"' EXIT

HARDBAKE=${HARDBAKE:-bin/hardbake}
if [[ ! -x $HARDBAKE ]]; then
	echo "bench-seed: $HARDBAKE not found, building it into $work" >&2
	CGO_ENABLED=0 go build -trimpath -o "$work/hardbake" ./cmd/hardbake
	HARDBAKE=$work/hardbake
fi
HARDBAKE=$(realpath "$HARDBAKE")

# A sample order: one admin key, generated here so no key is committed.
ssh-keygen -q -t ed25519 -N '' -C bench@hardbake -f "$work/id_ed25519"
cat >"$work/order.yaml" <<EOF
hostname: bench-vps-1
ssh_keys:
  - $(cat "$work/id_ed25519.pub")
EOF

# The agent by URL with a pinned sha256: the seed holds only the documents.
agent=(--agent url=https://example.invalid/hardbake-firstboot --agent-sha256 "$(printf '%064d' 0 | tr 0 a)")
common=(--profile baseline --order "$work/order.yaml" "${agent[@]}")

"$HARDBAKE" render "${common[@]}" -o "$work/docs" 2>/dev/null
"$HARDBAKE" iso "${common[@]}" -o "$work/check.iso" 2>/dev/null
for f in user-data meta-data; do
	if ! cmp -s <(isoinfo -R -i "$work/check.iso" -x "/$f") "$work/docs/$f"; then
		echo "bench-seed: $f in hardbake's seed differs from render's; the comparison would not be fair" >&2
		exit 1
	fi
done
ud_bytes=$(stat -c %s "$work/docs/user-data")

names=("hardbake iso (iso9660)" "cloud-localds (iso9660)" "hardbake iso --format vfat" "cloud-localds -f vfat")
outs=("$work/hb.iso" "$work/cl.iso" "$work/hb.img" "$work/cl.img")
cmds=(
	"$HARDBAKE iso ${common[*]} -o ${outs[0]}"
	"cloud-localds ${outs[1]} $work/docs/user-data $work/docs/meta-data"
	"$HARDBAKE iso ${common[*]} --format vfat -o ${outs[2]}"
	"cloud-localds -f vfat ${outs[3]} $work/docs/user-data $work/docs/meta-data"
)
hf=()
for i in "${!cmds[@]}"; do hf+=(-n "${names[$i]}" "${cmds[$i]}"); done

# -N (no intermediate shell): both tools are started directly, so the shell's
# own start-up is not added to either. cloud-localds is itself a shell
# script, which is part of its real cost.
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/hyperfine.json" \
	--style basic "${hf[@]}" >&2

echo
echo "Seed build, user-data ${ud_bytes} bytes + meta-data, ${RUNS} runs after ${WARMUP} warm-up ($(nproc) CPUs, $(uname -sr))"
echo
echo "| tool | mean ms ± sd | image bytes | allocated bytes |"
echo "| --- | ---: | ---: | ---: |"
for i in "${!cmds[@]}"; do
	read -r mean sd < <(jq -r --arg n "${names[$i]}" \
		'.results[] | select(.command == $n) | "\(.mean * 1000) \(.stddev * 1000)"' "$work/hyperfine.json")
	printf '| %s | %.2f ± %.2f | %d | %d |\n' "${names[$i]}" "$mean" "$sd" \
		"$(stat -c %s "${outs[$i]}")" "$(du -B1 "${outs[$i]}" | cut -f1)"
done
