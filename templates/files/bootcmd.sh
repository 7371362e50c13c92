# hardbake first-boot launcher; cloud-init runs it as the first bootcmd
# entry on every boot, before sshd starts. Arguments (never interpolated
# into this text): $1 source kind (seed|url|embed), $2 source (file name on
# the seed, URL, or path of the unpacked embedded copy), $3 agent sha256,
# $4 plan (gz: and the base64 of its gzip'd JSON, or the JSON itself),
# $5 plan sha256. Any failure leaves a report and a FAILED line, and never
# touches SSH. HARDBAKE_ROOT: tests only.
set -u
kind=$1 src=$2 agent_sha=$3 plan=$4 plan_sha=$5
root=${HARDBAKE_ROOT:-}
agent=$root/usr/local/sbin/hardbake-firstboot
state=$root/var/lib/hardbake
umask 077
fail() {
  echo "hardbake: FAILED step=agent: $*"
  why=$(printf %s "$*" | tr -d '\000-\037' | sed 's/[\\"]/\\&/g')
  sum=$(printf %s "$plan_sha" | tr -cd 0-9a-f)
  up=$(cut -d' ' -f1 /proc/uptime 2>/dev/null) || up=0
  case $up in '' | *[!0-9.]* | .* | *. | *.*.*) up=0 ;; esac
  { mkdir -p "$state" &&
    printf '{"plan_digest":"%s","stage":"early","result":"failed","steps":[{"name":"agent","stage":"early","status":"failed","error":"%s","uptime_s":%s}]}\n' \
      "$sum" "$why" "$up" > "$state/report.json.new" &&
    mv -f "$state/report.json.new" "$state/report.json"; } ||
    echo "hardbake: cannot write $state/report.json" >&2
  exit 1
}
pinned() { [ -f "$1" ] && [ -x "$1" ] && printf '%s  %s\n' "$agent_sha" "$1" | sha256sum -c --status; }
if ! pinned "$agent"; then
  mkdir -p "${agent%/*}" || fail "cannot create ${agent%/*}"
  tmp=$(mktemp "$agent.XXXXXX") || fail "cannot create a temp file beside $agent"
  trap 'rm -f "$tmp"' EXIT
  case $kind in
  seed)
    dev=$(blkid -L cidata || blkid -L CIDATA) || fail "no cidata seed device"
    mnt=$(mktemp -d) || fail "cannot create a mount point"
    mount -o ro "$dev" "$mnt" || { rmdir "$mnt"; fail "cannot mount seed $dev"; }
    cp "$mnt/$src" "$tmp" || { umount "$mnt"; rmdir "$mnt"; fail "no $src on the seed (wrong --arch for $(uname -m)?)"; }
    umount "$mnt"; rmdir "$mnt" ;;
  url)
    python3 -c 'import sys, urllib.request, shutil
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$src" "$tmp" || fail "download of $src failed" ;;
  embed)
    gzip -dc "$src" > "$tmp" || fail "cannot unpack the embedded agent" ;;
  *) fail "unknown agent source $kind" ;;
  esac
  chmod 0755 "$tmp" || fail "cannot chmod $tmp"
  pinned "$tmp" || fail "agent sha256 does not match the pin (wrong --arch for $(uname -m)?)"
  mv -f "$tmp" "$agent" || fail "cannot install $agent"
  trap - EXIT
fi
mkdir -p "$state" || fail "cannot create $state"
case $plan in
gz:*) printf '%s' "${plan#gz:}" | base64 -d | gzip -dc > "$state/plan.json.new" ||
  { rm -f "$state/plan.json.new"; fail "cannot unpack the plan"; } ;;
*) printf '%s' "$plan" > "$state/plan.json.new" || fail "cannot write $state/plan.json.new" ;;
esac
mv -f "$state/plan.json.new" "$state/plan.json" || fail "cannot write $state/plan.json"
"$agent" apply --stage early --plan "$state/plan.json" --plan-sha256 "$plan_sha"
rc=$?
# 126/127: not runnable here; >128: killed. It wrote no report.
if [ "$rc" -ge 126 ]; then
  fail "the agent did not run to its end (exit $rc; wrong --arch for $(uname -m)?)"
fi
exit "$rc"
