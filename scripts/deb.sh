#!/usr/bin/env bash
# Build hardbake_VERSION_ARCH.deb with Debian's own tooling (debhelper,
# dpkg-buildpackage) from a copy of the work tree, so the build never writes
# beside the repository. VERSION comes from git describe.
#
# usage: scripts/deb.sh [OUT_DIR]   (default: the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${1:-$repo}
version=$(bash scripts/version.sh deb)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/hardbake-$version
mkdir -p "$src"
# Tracked and new (not ignored) files, as they are in the work tree.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
	[ -e "$f" ] && cp -a --parents "$f" "$src/"
done
cat >"$src/debian/changelog" <<CHANGELOG
hardbake ($version) unstable; urgency=medium

  * Built from $(git describe --always --dirty 2>/dev/null || echo "an unversioned tree").

 -- hardbake developers <dev@hardbake.dev>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
CHANGELOG
# -d: the Go toolchain is the host's, not a Debian build dependency; keep
# the caller's module and build caches (debhelper moves HOME).
(cd "$src" && GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) GOFLAGS=-mod=mod \
	dpkg-buildpackage -b -us -uc -d >"$work/build.log" 2>&1) || { tail -40 "$work/build.log" >&2; exit 1; }
deb=$(ls "$work"/hardbake_"$version"_*.deb)
cp "$deb" "$out/"
echo "$out/$(basename "$deb")"
