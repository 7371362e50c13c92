#!/usr/bin/env bash
# The package as a provider installs it: build hardbake_*.deb, hold it to
# lintian (no error), install it with its dependencies into a fresh Debian 12
# root (mmdebstrap, chroot, no systemd), run the installed CLI there with no
# HARDBAKE_AGENT_DIR, then remove it and check that only conffiles remain,
# and purge it and check that nothing remains.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "deb-test: needs root (chroot)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/hardbake-deb-test.XXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
say() { echo "deb-test: $*"; }
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }

deb=$(bash scripts/deb.sh "$work")
say "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
dpkg-deb -I "$deb" | sed -n 's/^ \(Version\|Architecture\|Depends\):/  \1:/p'

say "lintian"
lintian --fail-on error --tag-display-limit 0 "$deb" | tee "$work/lintian.txt"
if grep -q '^E:' "$work/lintian.txt"; then fail "lintian reports errors"; fi

root=$work/root
say "fresh Debian 12 root (mmdebstrap)"
mmdebstrap --quiet --variant=apt bookworm "$root" >"$work/mmdebstrap.log" 2>&1 || { tail -20 "$work/mmdebstrap.log"; fail "mmdebstrap"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" env -u HARDBAKE_AGENT_DIR PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

say "apt install ./$(basename "$deb")"
# mmdebstrap leaves no package lists behind: fetch them first.
{ in_root apt-get update -q && in_root apt-get install -y -q "/tmp/$(basename "$deb")"; } >"$work/install.log" 2>&1 \
	|| { tail -30 "$work/install.log"; fail "install"; }

say "the installed CLI, no HARDBAKE_AGENT_DIR"
in_root hardbake version
ssh-keygen -q -t ed25519 -N '' -C deb-test -f "$work/key"
cat >"$root/tmp/order.yaml" <<ORDER
hostname: deb-test
instance_id: deb-test-1
admin_user: ops
ssh_keys:
  - "$(cat "$work/key.pub")"
ORDER
in_root hardbake render --profile baseline --order /tmp/order.yaml -o /tmp/seed
in_root hardbake iso --profile strict --order /tmp/order.yaml -o /tmp/seed.iso
for f in user-data meta-data; do [ -s "$root/tmp/seed/$f" ] || fail "render wrote no $f"; done
isoinfo -R -f -i "$root/tmp/seed.iso" | grep -qx /hardbake-firstboot-linux-amd64 || fail "the ISO carries no agent"
cmp <(isoinfo -R -i "$root/tmp/seed.iso" -x /hardbake-firstboot-linux-amd64) "$root/usr/lib/hardbake/hardbake-firstboot-linux-amd64" \
	|| fail "the agent on the ISO is not the installed one"
in_root hardbaked version || fail "hardbaked does not run"
id_line=$(in_root getent passwd hardbaked) || fail "no hardbaked system user"
say "system user: $id_line"

# Every file the package ships, and which of them are conffiles.
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|' >"$work/files"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles" 2>/dev/null || : >"$work/conffiles"

say "apt remove: only conffiles may remain"
in_root apt-get remove -y -q hardbake >"$work/remove.log" 2>&1 || { tail -20 "$work/remove.log"; fail "remove"; }
left=0
while IFS= read -r f; do
	case $f in */) continue ;; esac
	grep -qxF "$f" "$work/conffiles" && continue
	if [ -e "$root$f" ] || [ -L "$root$f" ]; then echo "  left behind: $f"; left=1; fi
done <"$work/files"
[ $left = 0 ] || fail "files left after remove"
while IFS= read -r f; do [ -e "$root$f" ] || fail "conffile $f removed by remove (only purge may)"; done <"$work/conffiles"
in_root dpkg-query -W -f='${Status}\n' hardbake | grep -q 'config-files' || fail "package not in config-files state"

say "apt purge: nothing remains"
in_root apt-get purge -y -q hardbake >"$work/purge.log" 2>&1 || { tail -20 "$work/purge.log"; fail "purge"; }
while IFS= read -r f; do [ -e "$root$f" ] && fail "conffile $f left after purge"; done <"$work/conffiles"
[ -e "$root/etc/hardbake" ] && fail "/etc/hardbake left after purge"
say "PASS"
