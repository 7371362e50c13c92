# hardbake first-boot launcher; cloud-init runs it as the first bootcmd
# entry on every boot, before sshd starts. Arguments (never interpolated
# into this text): $1 source kind (seed|url|embed), $2 source (file name on
# the seed, URL, or path of the unpacked embedded copy), $3 agent sha256,
# $4 plan JSON, $5 plan sha256.
set -eu
kind=$1 src=$2 agent_sha=$3 plan=$4 plan_sha=$5
agent=/usr/local/sbin/hardbake-firstboot
state=/var/lib/hardbake
umask 077
fail() { echo "hardbake: FAILED step=agent: $*" >&2; exit 1; }
pinned() { [ -x "$1" ] && printf '%s  %s\n' "$agent_sha" "$1" | sha256sum -c --status; }
if ! pinned "$agent"; then
  mkdir -p /usr/local/sbin
  tmp=$(mktemp "$agent.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  case $kind in
  seed)
    dev=$(blkid -L cidata || blkid -L CIDATA) || fail "no cidata seed device"
    mnt=$(mktemp -d)
    mount -o ro "$dev" "$mnt" || fail "cannot mount seed $dev"
    cp "$mnt/$src" "$tmp" || { umount "$mnt"; fail "no $src on the seed (wrong --arch for $(uname -m)?)"; }
    umount "$mnt"; rmdir "$mnt" ;;
  url)
    python3 -c 'import sys, urllib.request, shutil
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$src" "$tmp" || fail "download of $src failed" ;;
  embed)
    gzip -dc "$src" > "$tmp" || fail "cannot unpack the embedded agent" ;;
  *) fail "unknown agent source $kind" ;;
  esac
  chmod 0755 "$tmp"
  pinned "$tmp" || fail "agent sha256 does not match the pin (wrong --arch for $(uname -m)?)"
  mv -f "$tmp" "$agent"
  trap - EXIT
fi
mkdir -p "$state"
printf '%s' "$plan" > "$state/plan.json.new"
mv -f "$state/plan.json.new" "$state/plan.json"
exec "$agent" apply --stage early --plan "$state/plan.json" --plan-sha256 "$plan_sha"
