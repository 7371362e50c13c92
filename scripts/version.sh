#!/usr/bin/env bash
# The project's version from git: `git describe` of the newest v* tag, or
# 0.0~git<commit date>.<hash> without tags. `deb` prints it in Debian's
# syntax (a leading digit, ~ sorting before the release it leads to).
set -euo pipefail
cd "$(dirname "$0")/.."
if d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
	v=${d#v}
else
	v="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0).$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	git diff --quiet HEAD 2>/dev/null || v="$v.dirty"
fi
case ${1:-} in
deb) echo "$v" | sed -e 's/-\([0-9]*\)-g/+\1.g/' -e 's/-dirty/.dirty/' ;;
*) echo "$v" ;;
esac
