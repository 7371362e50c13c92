#!/usr/bin/env bash
# Build the first-boot agent for linux/amd64 and linux/arm64, static and
# stripped, and hold it to its size budget: amd64 <= 3.0 MiB and <= 2.0x a
# stripped hello-world built the same way in the same run (so the ratio
# follows the Go toolchain, the absolute cap follows user-data/seed limits).
#
# usage: scripts/build-agent.sh BIN_DIR "LDFLAGS"
set -euo pipefail

bin=${1:?usage: build-agent.sh BIN_DIR LDFLAGS}
ldflags=${2:--s -w}
max_bytes=$((3 * 1024 * 1024))

mkdir -p "$bin"
for arch in amd64 arm64; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" \
		-o "$bin/hardbake-firstboot-linux-$arch" ./cmd/hardbake-firstboot
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/go.mod" <<'MOD'
module hello
go 1.26
MOD
cat >"$tmp/main.go" <<'SRC'
package main

import "fmt"

func main() { fmt.Println("hello") }
SRC
(cd "$tmp" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "-s -w" -o hello .)

size() { stat -c %s "$1"; }
hello=$(size "$tmp/hello")
row() { # name bytes
	awk -v n="$1" -v b="$2" -v h="$hello" 'BEGIN { printf "| %-32s | %9d | %6.2f | %5.2fx|\n", n, b, b/1048576, b/h }'
}
echo "| binary                           |     bytes |    MiB | hello |"
echo "| -------------------------------- | --------- | ------ | ----- |"
row "hello-world (linux/amd64)" "$hello"
for arch in amd64 arm64; do
	row "hardbake-firstboot-linux-$arch" "$(size "$bin/hardbake-firstboot-linux-$arch")"
done

agent="$bin/hardbake-firstboot-linux-amd64"
info=$(file -b "$agent")
echo "file: $info"
fail=0
case $info in
*"statically linked"*) ;;
*) echo "FAIL: $agent is not statically linked" >&2; fail=1 ;;
esac
a=$(size "$agent")
if [ "$a" -gt "$max_bytes" ]; then
	echo "FAIL: $agent is $a bytes, over the 3.0 MiB budget ($max_bytes)" >&2
	fail=1
fi
if [ "$a" -gt $((hello * 2)) ]; then
	echo "FAIL: $agent is $a bytes, over 2.0x hello-world ($hello)" >&2
	fail=1
fi
exit $fail
