#!/bin/sh
# record-fail2ban.sh: run real fail2ban servers (Debian 12's 1.0.2 and Debian
# 13's 1.1.0) from throwaway directories and record what fail2ban-client
# prints for every command the agent runs, so agent/fail2ban_test.go checks the
# agent against each version's exact output.
#
#   scripts/record-fail2ban.sh [OUTDIR]     (default agent/testdata/fail2ban)
#
# Needs root (unshare --net), python3, dpkg-deb and apt-get. 1.0.2 is the
# installed package (/usr/bin/fail2ban-*, /etc/fail2ban), refused if another
# version is installed; 1.1.0 is Debian 13's .deb, downloaded with apt-get
# through a private sources list, state and cache directory (the machine's
# apt state is not touched) and unpacked with dpkg-deb -x, run with the
# system python3 through PYTHONPATH.
#
# Nothing touches the host's firewall: every server runs in its own network
# namespace (unshare --net), and action.d/nftables.local turns each of the
# action's commands into `true` (the action keeps its name, type and port
# properties, which is all the agent reads). The host's nft ruleset is
# compared before and after, and the script fails if it changed.
#
# Each scenario is a jail.local like the one hardbake renders for the strict
# profile (see templates/files/jail.local.tmpl), with these changes so it
# runs anywhere: backend = polling on an empty log file instead of the
# journal, dbfile = :memory:, own socket, pid file and log file.
#
# Output: OUTDIR/<version>/<scenario>/<name>.txt is the exact stdout of one
# command (LC_ALL=C, as the agent runs it; the throwaway directory of the
# jails' log files is written as /var/log/), <name>.stderr its stderr when
# there is any, and OUTDIR/<version>/<scenario>/commands.txt indexes them:
# "<exit code> <name> fail2ban-client <args>", the args as the agent passes
# them (without the -c CONFDIR -s SOCKET this script adds).
#
# Scenarios: strict (hardbake's jail.local), multiport-recidive (recidive
# edited to ban on the multiport action: must fail verification) and
# distro-allports (no banaction lines: each distribution's own defaults, which
# on Debian 13 name the all-ports action "nftables" with type=allports).
set -eu

export LC_ALL=C
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/agent/testdata/fail2ban}
sshport=60797 # the port in render/testdata/golden/strict.user-data

[ "$(id -u)" = 0 ] || { echo "record-fail2ban: needs root (unshare --net)" >&2; exit 2; }
for tool in python3 dpkg-deb apt-get unshare; do
	command -v "$tool" >/dev/null || { echo "record-fail2ban: $tool not found" >&2; exit 2; }
done

work=$(mktemp -d /tmp/record-fail2ban.XXXXXX)
running=""
cleanup() {
	for pidfile in $running; do
		[ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

ruleset() { command -v nft >/dev/null && nft list ruleset 2>&1 || true; }
ruleset >"$work/nft.before"

# jail_local SCENARIO DIR: the jail.local of one scenario.
jail_local() {
	scenario=$1 dir=$2
	# [DEFAULT] as hardbake renders it, except the journal backend.
	if [ "$scenario" = distro-allports ]; then
		# No banaction lines: the distribution's defaults decide
		# (Debian 13's jail.d/defaults-debian.conf: nftables and
		# nftables[type=allports]; Debian 12's jail.conf: iptables-*).
		cat <<EOF
[DEFAULT]
bantime = 1h
findtime = 10m
maxretry = 3
backend = polling
EOF
	else
		cat <<EOF
[DEFAULT]
bantime = 1h
findtime = 10m
maxretry = 3
backend = polling
banaction = nftables-multiport
banaction_allports = nftables-allports
EOF
	fi
	cat <<EOF

[sshd]
enabled = true
port = $sshport
filter = sshd
mode = aggressive
backend = polling
logpath = $dir/auth.log
bantime = 1h
findtime = 10m
maxretry = 3

[recidive]
enabled = true
backend = polling
logpath = $dir/fail2ban.log
EOF
	case $scenario in
	strict) echo "banaction = nftables-allports" ;;
	multiport-recidive) echo "banaction = nftables-multiport" ;;
	esac
	cat <<EOF
bantime = 1w
findtime = 1d
maxretry = 3
EOF
}

# record VERSION ETCDIR SCENARIO CLIENT SERVER: start a server from a copy of
# ETCDIR with SCENARIO's jail.local, record every command, stop it.
record() {
	version=$1 etc=$2 scenario=$3 client=$4 server=$5
	dir=$work/$version-$scenario
	conf=$dir/etc
	mkdir -p "$dir"
	cp -a "$etc" "$conf"
	rm -f "$conf"/jail.local "$conf"/jail.d/*.local "$conf"/fail2ban.local "$conf"/fail2ban.d/*.local
	: >"$dir/auth.log"
	: >"$dir/fail2ban.log"
	cat >"$conf/fail2ban.local" <<EOF
[Definition]
logtarget = $dir/fail2ban.log
socket = $dir/fail2ban.sock
pidfile = $dir/fail2ban.pid
dbfile = :memory:
EOF
	# Keep the action's name and [Init] (type, port, protocol): only the
	# commands change, to ones that do nothing.
	cat >"$conf/action.d/nftables.local" <<EOF
[Definition]
actionstart = true
actionflush = true
actionstop = true
actioncheck = true
actionban = true
actionunban = true
EOF
	jail_local "$scenario" "$dir" >"$conf/jail.local"
	running="$running $dir/fail2ban.pid"

	dest=$out/$version/$scenario
	rm -rf "$dest"
	mkdir -p "$dest"
	sed "s|$dir/|/var/log/|g" "$conf/jail.local" >"$dest/jail.local"
	index=$dest/commands.txt
	: >"$index"
	# rec NAME ARGS...: one command, as the agent would run it.
	rec() {
		name=$1
		shift
		rc=0
		"$client" -c "$conf" -s "$dir/fail2ban.sock" "$@" >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
		# The jails' log files sit where a real machine has them.
		sed "s|$dir/|/var/log/|g" "$dir/$name.out" >"$dest/$name.txt"
		# A refused request also logs "ERROR NOK: ..." to stderr (with a
		# time stamp and pid); the agent sees it in its error.
		[ ! -s "$dir/$name.err" ] || sed "s|$dir/|/var/log/|g" "$dir/$name.err" >"$dest/$name.stderr"
		echo "$rc $name fail2ban-client $*" >>"$index"
	}

	rec config-test -t
	unshare --net "$server" -c "$conf" -s "$dir/fail2ban.sock" -p "$dir/fail2ban.pid" -b start >"$dir/start.log" 2>&1 || {
		cat "$dir/start.log" "$dir/fail2ban.log" >&2
		echo "record-fail2ban: $version $scenario: the server did not start" >&2
		exit 1
	}
	i=0
	until "$client" -s "$dir/fail2ban.sock" ping >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$dir/fail2ban.log" >&2; echo "record-fail2ban: $version $scenario: no pong in 20s" >&2; exit 1; }
		sleep 0.2
	done
	rec ping ping
	rec version version
	rec version-short -V
	rec status status
	rec status-sshd status sshd
	rec status-recidive status recidive
	for jail in sshd recidive; do
		rec "$jail-actions" get "$jail" actions
		# The agent takes the first action; record every one.
		"$client" -s "$dir/fail2ban.sock" get "$jail" actions |
			sed -n '2p' | tr ',' '\n' | sed 's/^ *//; s/ *$//' | sed '/^$/d' >"$dir/$jail.actions"
		while read -r action; do
			rec "$jail-action-$action-port" get "$jail" action "$action" port
			rec "$jail-action-$action-type" get "$jail" action "$action" type
			rec "$jail-actionproperties-$action" get "$jail" actionproperties "$action"
		done <"$dir/$jail.actions"
	done
	rec nojail-actions get nosuchjail actions
	"$client" -s "$dir/fail2ban.sock" stop >/dev/null
	i=0
	while [ -e "$dir/fail2ban.sock" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "record-fail2ban: $version $scenario: server did not stop" >&2; exit 1; }
		sleep 0.2
	done
	echo "$version $scenario: $(wc -l <"$index") commands in $dest"
}

scenarios="strict multiport-recidive distro-allports"

# Debian 12: the installed package.
v12=$(dpkg-query -W -f '${Version}' fail2ban 2>/dev/null || true)
case $v12 in
1.0.2-*) ;;
*) echo "record-fail2ban: fail2ban 1.0.2 (Debian 12) must be installed, found '${v12:-none}'" >&2; exit 2 ;;
esac
for s in $scenarios; do
	record 1.0.2 /etc/fail2ban "$s" /usr/bin/fail2ban-client /usr/bin/fail2ban-server
done

# Debian 13: its .deb through a private apt configuration.
apt=$work/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/deb"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$apt/sources.list"
aptopts="-o Dir::Etc::sourcelist=$apt/sources.list -o Dir::Etc::sourceparts=/nonexistent -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o APT::Get::List-Cleanup=0"
# shellcheck disable=SC2086 # aptopts is a list of options
apt-get -q $aptopts update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; exit 1; }
# shellcheck disable=SC2086
(cd "$apt/deb" && apt-get -q $aptopts download fail2ban/trixie >"$apt/download.log" 2>&1) || { cat "$apt/download.log" >&2; exit 1; }
deb=$(ls "$apt"/deb/fail2ban_*.deb)
case $deb in
*/fail2ban_1.1.0-*_all.deb) ;;
*) echo "record-fail2ban: Debian 13's fail2ban is $deb, not 1.1.0" >&2; exit 1 ;;
esac
root13=$work/fail2ban-1.1.0
dpkg-deb -x "$deb" "$root13"
export PYTHONPATH="$root13/usr/lib/python3/dist-packages"
got=$(python3 "$root13/usr/bin/fail2ban-client" -V)
[ "$got" = 1.1.0 ] || { echo "record-fail2ban: the unpacked client says '$got', not 1.1.0" >&2; exit 1; }
for s in $scenarios; do
	record 1.1.0 "$root13/etc/fail2ban" "$s" "$root13/usr/bin/fail2ban-client" "$root13/usr/bin/fail2ban-server"
done
unset PYTHONPATH
echo "# $(basename "$deb"), python3 $(python3 -c 'import platform; print(platform.python_version())')" >"$out/1.1.0/SOURCE"
echo "# fail2ban $v12 (Debian 12 package), python3 $(python3 -c 'import platform; print(platform.python_version())')" >"$out/1.0.2/SOURCE"

ruleset >"$work/nft.after"
if ! cmp -s "$work/nft.before" "$work/nft.after"; then
	diff "$work/nft.before" "$work/nft.after" >&2 || true
	echo "record-fail2ban: the host's nft ruleset changed while recording" >&2
	exit 1
fi
