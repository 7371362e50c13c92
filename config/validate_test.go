package config_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
)

// profHead is the smallest valid profile; bodies appended to it start on
// line 5, which is what the expected positions below count from.
const profHead = "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: web\n"

// q quotes s as a YAML double-quoted scalar (Go's escapes are YAML's).
func q(s string) string { return strconv.Quote(s) }

// armoredKey is a real ed25519 public key (config/testdata/mirror-key.asc,
// made with gpg --quick-gen-key for these tests).
const armoredKey = `-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw9r8hYJKwYBBAHaRw8BAQdAgL2RUTM5JAKG7+wXmvqAGWqElk53zWCbjnq8
CqhTUfu0KWhhcmRiYWtlIHRlc3QgbWlycm9yIDxtaXJyb3JAZXhhbXBsZS5uZXQ+
iJAEExYIADgWIQQJ7vjk7F84lSJnBoMGkvhgki7W2gUCaw9r8gIbAwULCQgHAgYV
CgkICwIEFgIDAQIeAQIXgAAKCRAGkvhgki7W2ufuAP4wbqIPeXfNgrt/ZV0bhF8e
bTvt1dTuvenIGOT55fOebQEAkd2U1Si9x7TRNNNXPqmYxNOhlAZIbb51yQkmLrZA
xQE=
=RPR1
-----END PGP PUBLIC KEY BLOCK-----`

// indent prefixes every line of s with n spaces.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

type profCase struct {
	name string
	doc  string // the whole document
	want string // "" means valid; else the exact error text
}

// body makes a case whose document is profHead + b.
func body(name, b, want string) profCase { return profCase{name, profHead + b, want} }

func profileCases() []profCase {
	long := func(n int) string { return strings.Repeat("a", n) }
	mirror := func(url string) string {
		return "updates:\n  mirror:\n    url: " + url + "\n"
	}
	const mirrorOK = "updates:\n  mirror:\n    url: https://deb.example.net/debian\n"
	return []profCase{
		// apiVersion, kind
		{"apiVersion ok", profHead, ""},
		{"apiVersion v2", "apiVersion: hardbake.dev/v2\nkind: Profile\nmetadata:\n  name: web\n",
			`p.yaml:1:13: apiVersion: must be "hardbake.dev/v1", not "hardbake.dev/v2"`},
		{"apiVersion missing", "kind: Profile\nmetadata:\n  name: web\n",
			`p.yaml:1:1: apiVersion: must be "hardbake.dev/v1", not ""`},
		{"kind Order", "apiVersion: hardbake.dev/v1\nkind: Order\nmetadata:\n  name: web\n",
			`p.yaml:2:7: kind: must be "Profile", not "Order"`},

		// metadata
		{"name ok", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: web-2\n", ""},
		{"name 63", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: " + long(63) + "\n", ""},
		{"name upper", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: Web_1\n",
			`p.yaml:4:9: metadata.name: "Web_1" must be 1–63 lower-case letters, digits and inner hyphens`},
		{"name hyphen", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: web-\n",
			`p.yaml:4:9: metadata.name: "web-" must be 1–63 lower-case letters, digits and inner hyphens`},
		{"name 64", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  name: " + long(64) + "\n",
			`p.yaml:4:9: metadata.name: "` + long(64) + `" must be 1–63 lower-case letters, digits and inner hyphens`},
		{"name missing", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n  description: x\n",
			`p.yaml:4:3: metadata.name: "" must be 1–63 lower-case letters, digits and inner hyphens`},
		{"description ok", profHead + "  description: " + q(`Web servers: nginx & co. #1 "quoted" $(x)`) + "\n", ""},
		{"description 200 runes", profHead + "  description: " + strings.Repeat("é", 200) + "\n", ""},
		{"description 201", profHead + "  description: " + long(201) + "\n",
			`p.yaml:5:16: metadata.description: must be one line of at most 200 characters`},
		{"description newline", profHead + "  description: " + q("a\nb") + "\n",
			`p.yaml:5:16: metadata.description: must be one line of at most 200 characters`},
		{"description U+2028", profHead + "  description: " + q("a\u2028b") + "\n",
			`p.yaml:5:16: metadata.description: must be one line of at most 200 characters`},
		{"description NEL", profHead + "  description: " + q("a\u0085b") + "\n",
			`p.yaml:5:16: metadata.description: must be one line of at most 200 characters`},

		// updates.unattended.reboot
		{"reboot none", profHead + "updates:\n  unattended:\n    reboot: none\n", ""},
		{"reboot 04:00", profHead + "updates:\n  unattended:\n    reboot: \"04:00\"\n", ""},
		{"reboot 24:00", profHead + "updates:\n  unattended:\n    reboot: \"24:00\"\n",
			`p.yaml:7:13: updates.unattended.reboot: "24:00" must be a time HH:MM (00:00–23:59) or none`},
		{"reboot 4am", profHead + "updates:\n  unattended:\n    reboot: 4am\n",
			`p.yaml:7:13: updates.unattended.reboot: "4am" must be a time HH:MM (00:00–23:59) or none`},

		// updates.mirror.url
		body("mirror ok", mirrorOK, ""),
		body("mirror http port path", mirror("http://10.0.0.1:8080/debian/"), ""),
		body("mirror ftp", mirror("ftp://m.example/debian"),
			`p.yaml:7:10: updates.mirror.url: "ftp://m.example/debian" must be an http or https URL (scheme in lower case)`),
		body("mirror relative", mirror("m.example/debian"),
			`p.yaml:7:10: updates.mirror.url: "m.example/debian" must be an http or https URL (scheme in lower case)`),
		body("mirror no host", mirror("http:///debian"),
			`p.yaml:7:10: updates.mirror.url: "http:///debian" has no host`),
		body("mirror space", mirror(q("http://m.example/deb ian")),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/deb ian" contains spaces, control or non-ASCII characters`),
		body("mirror newline", mirror(q("http://m.example/\ndeb http://evil/ x")),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/\ndeb http://evil/ x" contains spaces, control or non-ASCII characters`),
		body("mirror quote", mirror(q(`http://m.example/"x`)),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/\"x" contains characters not allowed in a mirror URL`),
		body("mirror single quote", mirror(q(`http://m.example/'x`)),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/'x" contains characters not allowed in a mirror URL`),
		body("mirror dollar", mirror(q("http://m.example/$(reboot)")),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/$(reboot)" contains characters not allowed in a mirror URL`),
		body("mirror query", mirror(q("http://m.example/debian?a=b")),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/debian?a=b" must not have a query or fragment`),
		body("mirror bare hash", mirror(q("http://m.example/debian#")),
			`p.yaml:7:10: updates.mirror.url: "http://m.example/debian#" must not have a query or fragment`),
		body("mirror missing url", "updates:\n  mirror:\n    suites: [bookworm]\n",
			`p.yaml:7:5: updates.mirror.url: "" must be an http or https URL (scheme in lower case)`),

		// updates.mirror.securityURL: the same rule as url
		body("security url ok", mirrorOK+"    securityURL: https://deb.example.net/debian-security\n", ""),
		body("security url shell", mirrorOK+"    securityURL: "+q("http://m.example/$(reboot)")+"\n",
			`p.yaml:8:18: updates.mirror.securityURL: "http://m.example/$(reboot)" contains characters not allowed in a mirror URL`),
		body("security url ftp", mirrorOK+"    securityURL: ftp://m.example/debian-security\n",
			`p.yaml:8:18: updates.mirror.securityURL: "ftp://m.example/debian-security" must be an http or https URL (scheme in lower case)`),

		// suites, components
		body("suites ok", mirrorOK+"    suites:\n      - $RELEASE\n      - $RELEASE-security\n      - bookworm-backports\n", ""),
		body("suite space", mirrorOK+"    suites:\n      - bookworm\n      - bad suite\n",
			`p.yaml:10:9: updates.mirror.suites[1]: "bad suite" is not a suite name (e.g. $RELEASE, $RELEASE-updates, bookworm)`),
		body("suite shell", mirrorOK+"    suites:\n      - "+q("$(reboot)")+"\n",
			`p.yaml:9:9: updates.mirror.suites[0]: "$(reboot)" is not a suite name (e.g. $RELEASE, $RELEASE-updates, bookworm)`),
		body("components ok", mirrorOK+"    components: [main, contrib, non-free-firmware, updates/main]\n", ""),
		body("component upper", mirrorOK+"    components:\n      - Main\n",
			`p.yaml:9:9: updates.mirror.components[0]: "Main" is not a component name (e.g. main)`),
		body("component two", mirrorOK+"    components:\n      - main contrib\n",
			`p.yaml:9:9: updates.mirror.components[0]: "main contrib" is not a component name (e.g. main)`),

		// armoured key
		body("key ok", mirrorOK+"    key: |\n"+indent(6, armoredKey)+"\n", ""),
		body("key garbage", mirrorOK+"    key: not a key\n",
			`p.yaml:8:10: updates.mirror.key: must be one ASCII-armoured OpenPGP public key block (BEGIN/END PGP PUBLIC KEY BLOCK)`),
		body("key private", mirrorOK+"    key: |\n"+indent(6, strings.ReplaceAll(armoredKey, "PUBLIC", "PRIVATE"))+"\n",
			`p.yaml:8:10: updates.mirror.key: must be one ASCII-armoured OpenPGP public key block (BEGIN/END PGP PUBLIC KEY BLOCK)`),
		body("key two blocks", mirrorOK+"    key: |\n"+indent(6, armoredKey+"\n"+armoredKey)+"\n",
			`p.yaml:8:10: updates.mirror.key: must hold exactly one key block`),
		body("key control", mirrorOK+"    key: "+q(strings.Replace(armoredKey, "=RPR1", "=RP\x1bR1", 1))+"\n",
			`p.yaml:8:10: updates.mirror.key: line 9 of the key has control or non-ASCII characters`),

		// ssh.port
		body("port random", "ssh:\n  port: random\n", ""),
		body("port 2222", "ssh:\n  port: 2222\n", ""),
		body("port 1", "ssh:\n  port: 1\n", ""),
		body("port 65535", "ssh:\n  port: 65535\n", ""),
		body("port 0", "ssh:\n  port: 0\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not 0`),
		body("port 22", "ssh:\n  port: 22\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", and not 22 (the point is to move SSH off port 22)`),
		body("port 65536", "ssh:\n  port: 65536\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not 65536`),
		body("port -1", "ssh:\n  port: -1\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random": "-1" is not a plain decimal number (digits only: no sign, no 0x/0o prefix, no _ or spaces)`),
		body("port abc", "ssh:\n  port: abc\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the string "abc"`),
		body("port quoted number", "ssh:\n  port: \"2222\"\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the string "2222"`),
		body("port huge", "ssh:\n  port: 99999999999999999999\n",
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the number 99999999999999999999`),

		// ssh.maxAuthTries, loginGraceTime, crypto
		body("maxAuthTries 1", "ssh:\n  maxAuthTries: 1\n", ""),
		body("maxAuthTries 10", "ssh:\n  maxAuthTries: 10\n", ""),
		body("maxAuthTries 0", "ssh:\n  maxAuthTries: 0\n", `p.yaml:6:17: ssh.maxAuthTries: must be 1–10, not 0`),
		body("maxAuthTries 11", "ssh:\n  maxAuthTries: 11\n", `p.yaml:6:17: ssh.maxAuthTries: must be 1–10, not 11`),
		body("maxAuthTries null", "ssh:\n  maxAuthTries: null\n", ""),
		body("loginGraceTime 1m", "ssh:\n  loginGraceTime: 1m\n", ""),
		body("loginGraceTime 10m", "ssh:\n  loginGraceTime: 10m\n", ""),
		body("loginGraceTime 0s", "ssh:\n  loginGraceTime: 0s\n", `p.yaml:6:19: ssh.loginGraceTime: 0s is outside 1s–10m0s`),
		body("loginGraceTime 11m", "ssh:\n  loginGraceTime: 11m\n", `p.yaml:6:19: ssh.loginGraceTime: 11m is outside 1s–10m0s`),
		body("loginGraceTime overflow", "ssh:\n  loginGraceTime: 213504d\n", `p.yaml:6:19: ssh.loginGraceTime: 213504d is outside 1s–10m0s`),
		body("loginGraceTime no unit", "ssh:\n  loginGraceTime: \"30\"\n",
			`p.yaml:6:19: ssh.loginGraceTime: "30" is not a duration (a number and one of s, m, h, d, w: e.g. 10m)`),
		body("crypto modern", "ssh:\n  crypto: modern\n", ""),
		body("crypto openssh", "ssh:\n  crypto: openssh\n", ""),
		body("crypto fips", "ssh:\n  crypto: fips\n", `p.yaml:6:11: ssh.crypto: must be compatible, modern or openssh, not "fips"`),

		// allowUsers, allowGroups
		body("allowUsers ok", "ssh:\n  allowUsers: [deploy, ci_bot]\n", ""),
		body("allowUsers root", "ssh:\n  allowUsers:\n    - deploy\n    - root\n",
			`p.yaml:8:7: ssh.allowUsers[1]: "root" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("allowUsers bad", "ssh:\n  allowUsers:\n    - Bob\n",
			`p.yaml:7:7: ssh.allowUsers[0]: "Bob" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("allowGroups ok", "ssh:\n  allowGroups: [sshusers]\n", ""),
		body("allowGroups bad", "ssh:\n  allowGroups:\n    - ssh users\n",
			`p.yaml:7:7: ssh.allowGroups[0]: "ssh users" is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)`),

		// admin
		body("admin deploy", "admin:\n  name: deploy\n", ""),
		body("admin 32", "admin:\n  name: "+long(32)+"\n", ""),
		body("admin 33", "admin:\n  name: "+long(33)+"\n",
			`p.yaml:6:9: admin.name: "`+long(33)+`" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("admin root", "admin:\n  name: root\n", `p.yaml:6:9: admin.name: "root" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin daemon", "admin:\n  name: daemon\n", `p.yaml:6:9: admin.name: "daemon" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin sshd", "admin:\n  name: sshd\n", `p.yaml:6:9: admin.name: "sshd" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin systemd-network", "admin:\n  name: systemd-network\n",
			`p.yaml:6:9: admin.name: "systemd-network" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin _apt", "admin:\n  name: _apt\n", `p.yaml:6:9: admin.name: "_apt" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin upper", "admin:\n  name: Admin\n",
			`p.yaml:6:9: admin.name: "Admin" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("admin digit first", "admin:\n  name: 1admin\n",
			`p.yaml:6:9: admin.name: "1admin" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("admin newline", "admin:\n  name: "+q("admin\nroot")+"\n",
			`p.yaml:6:9: admin.name: "admin\nroot" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("sudo password", "admin:\n  sudo: password\n", ""),
		body("sudo always", "admin:\n  sudo: always\n", `p.yaml:6:9: admin.sudo: must be nopasswd or password, not "always"`),
		// admin.shell: only shells every image has; nologin and friends lock the admin out.
		body("shell bash", "admin:\n  shell: /bin/bash\n", ""),
		body("shell usr bash", "admin:\n  shell: /usr/bin/bash\n", ""),
		body("shell dash", "admin:\n  shell: /bin/dash\n", ""),
		body("shell sh", "admin:\n  shell: /bin/sh\n", ""),
		body("shell zsh", "admin:\n  shell: /usr/bin/zsh\n", `p.yaml:6:10: admin.shell: "/usr/bin/zsh" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell nologin", "admin:\n  shell: /usr/sbin/nologin\n", `p.yaml:6:10: admin.shell: "/usr/sbin/nologin" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell sbin nologin", "admin:\n  shell: /sbin/nologin\n", `p.yaml:6:10: admin.shell: "/sbin/nologin" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell false", "admin:\n  shell: /bin/false\n", `p.yaml:6:10: admin.shell: "/bin/false" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell usr false", "admin:\n  shell: /usr/bin/false\n", `p.yaml:6:10: admin.shell: "/usr/bin/false" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell sync", "admin:\n  shell: /bin/sync\n", `p.yaml:6:10: admin.shell: "/bin/sync" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell true", "admin:\n  shell: /bin/true\n", `p.yaml:6:10: admin.shell: "/bin/true" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell relative", "admin:\n  shell: bash\n", `p.yaml:6:10: admin.shell: "bash" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell args", "admin:\n  shell: /bin/sh -c reboot\n", `p.yaml:6:10: admin.shell: "/bin/sh -c reboot" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell dotdot", "admin:\n  shell: /bin/../bin/bash\n", `p.yaml:6:10: admin.shell: "/bin/../bin/bash" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell empty", "admin:\n  shell: \"\"\n", `p.yaml:6:10: admin.shell: "" is not a login shell every Debian and Ubuntu image has (one of /bin/bash, /usr/bin/bash, /bin/sh, /usr/bin/sh, /bin/dash, /usr/bin/dash)`),
		body("shell null is default", "admin:\n  shell: null\n", ""),
		body("groups ok", "admin:\n  groups: [docker, adm]\n", ""),
		body("admin disk group", "admin:\n  name: disk\n", `p.yaml:6:9: admin.name: "disk" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin sudo group", "admin:\n  name: sudo\n", `p.yaml:6:9: admin.name: "sudo" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin users group", "admin:\n  name: users\n", `p.yaml:6:9: admin.name: "users" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin nogroup", "admin:\n  name: nogroup\n", `p.yaml:6:9: admin.name: "nogroup" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin netdev", "admin:\n  name: netdev\n", `p.yaml:6:9: admin.name: "netdev" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin kvm", "admin:\n  name: kvm\n", `p.yaml:6:9: admin.name: "kvm" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin systemd-journal", "admin:\n  name: systemd-journal\n", `p.yaml:6:9: admin.name: "systemd-journal" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin debian-tor", "admin:\n  name: debian-tor\n", `p.yaml:6:9: admin.name: "debian-tor" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`),
		body("admin debian default user", "admin:\n  name: debian\n", ""),
		body("admin ubuntu default user", "admin:\n  name: ubuntu\n", ""),
		body("admin empty", "admin:\n  name: \"\"\n", `p.yaml:6:9: admin.name: "" is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`),
		body("groups own name", "admin:\n  name: deploy\n  groups: [docker, deploy]\n",
			`p.yaml:7:20: admin.groups[1]: "deploy" is the admin's own name (admin.name): cloud-init would create the group first and useradd would then fail`),
		body("groups repeated", "admin:\n  groups: [docker, docker]\n",
			`p.yaml:6:20: admin.groups[1]: "docker" is already listed in admin.groups[0]`),
		body("groups bad", "admin:\n  groups:\n    - Docker\n",
			`p.yaml:7:7: admin.groups[0]: "Docker" is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)`),

		// firewall
		body("backend nftables", "firewall:\n  backend: nftables\n", ""),
		body("backend iptables", "firewall:\n  backend: iptables\n", ""),
		body("backend pf", "firewall:\n  backend: pf\n", `p.yaml:6:12: firewall.backend: must be auto, nftables or iptables, not "pf"`),
		body("service ok", "firewall:\n  services:\n    - port: 443\n    - port: 443\n      proto: udp\n", ""),
		body("service port 0", "firewall:\n  services:\n    - port: 0\n",
			`p.yaml:7:13: firewall.services[0].port: must be 1–65535, not 0`),
		body("service port missing", "firewall:\n  services:\n    - proto: tcp\n",
			`p.yaml:7:7: firewall.services[0].port: must be 1–65535, not 0`),
		body("service port 65536", "firewall:\n  services:\n    - port: 65536\n",
			`p.yaml:7:13: firewall.services[0].port: must be 1–65535, not 65536`),
		body("service proto", "firewall:\n  services:\n    - port: 80\n      proto: sctp\n",
			`p.yaml:8:14: firewall.services[0].proto: must be tcp or udp, not "sctp"`),
		body("service duplicate", "firewall:\n  services:\n    - port: 80\n    - port: 80\n      proto: tcp\n",
			`p.yaml:8:7: firewall.services[1]: 80/tcp is already declared in firewall.services[0]`),
		body("sources ok", "firewall:\n  services:\n    - port: 443\n      sources: [203.0.113.0/24, 10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32]\n", ""),
		body("source host bits v4", "firewall:\n  services:\n    - port: 443\n      sources:\n        - 10.0.0.1/8\n",
			`p.yaml:9:11: firewall.services[0].sources[0]: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`),
		body("source host bits v6", "firewall:\n  services:\n    - port: 443\n      sources:\n        - 2001:db8::1/32\n",
			`p.yaml:9:11: firewall.services[0].sources[0]: "2001:db8::1/32" has host bits set; did you mean 2001:db8::/32?`),
		body("source garbage", "firewall:\n  services:\n    - port: 443\n      sources:\n        - garbage\n",
			`p.yaml:9:11: firewall.services[0].sources[0]: "garbage" is not a CIDR network (e.g. 203.0.113.0/24 or 2001:db8::/32)`),
		body("source bare address", "firewall:\n  services:\n    - port: 443\n      sources:\n        - 10.0.0.1\n",
			`p.yaml:9:11: firewall.services[0].sources[0]: "10.0.0.1" is not a CIDR network (e.g. 203.0.113.0/24 or 2001:db8::/32)`),

		// fail2ban
		body("f2b defaults ok", "fail2ban:\n  defaults:\n    bantime: 1d\n    findtime: 1h\n    maxretry: 100\n", ""),
		body("f2b bantime bad", "fail2ban:\n  defaults:\n    bantime: 10x\n",
			`p.yaml:7:14: fail2ban.defaults.bantime: "10x" is not a duration (a number and one of s, m, h, d, w: e.g. 10m)`),
		body("f2b findtime 0s", "fail2ban:\n  defaults:\n    findtime: 0s\n",
			`p.yaml:7:15: fail2ban.defaults.findtime: 0s is outside 1s–8760h0m0s`),
		body("f2b bantime overflow", "fail2ban:\n  defaults:\n    bantime: 30501w\n",
			`p.yaml:7:14: fail2ban.defaults.bantime: 30501w is outside 1s–8760h0m0s`),
		body("f2b maxretry 0", "fail2ban:\n  defaults:\n    maxretry: 0\n",
			`p.yaml:7:15: fail2ban.defaults.maxretry: must be 1–100, not 0`),
		body("f2b maxretry 101", "fail2ban:\n  defaults:\n    maxretry: 101\n",
			`p.yaml:7:15: fail2ban.defaults.maxretry: must be 1–100, not 101`),
		body("jails ok", "fail2ban:\n  jails:\n    sshd:\n      bantime: 30m\n    recidive:\n      enabled: false\n", ""),
		body("jail unknown", "fail2ban:\n  jails:\n    nginx:\n      maxretry: 3\n",
			`p.yaml:8:7: fail2ban.jails.nginx: unknown jail "nginx" (known: recidive, sshd)`),
		body("jail sshd disabled", "fail2ban:\n  jails:\n    sshd:\n      enabled: false\n",
			`p.yaml:8:16: fail2ban.jails.sshd.enabled: the sshd jail cannot be disabled while fail2ban is enabled (fail2ban.enabled)`),
		body("jail sshd disabled with fail2ban", "fail2ban:\n  enabled: false\n  jails:\n    sshd:\n      enabled: false\n", ""),
		body("jail maxretry 0", "fail2ban:\n  jails:\n    sshd:\n      maxretry: 0\n",
			`p.yaml:8:17: fail2ban.jails.sshd.maxretry: must be 1–100, not 0`),
		body("jail bantime bad", "fail2ban:\n  jails:\n    recidive:\n      bantime: 1y\n",
			`p.yaml:8:16: fail2ban.jails.recidive.bantime: "1y" is not a duration (a number and one of s, m, h, d, w: e.g. 10m)`),

		// packages
		body("packages ok", "packages: [curl, libc6-dev, g++, python3.11]\n", ""),
		body("package upper", "packages:\n  - Curl\n", `p.yaml:6:5: packages[0]: "Curl" is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)`),
		body("package one char", "packages:\n  - c\n", `p.yaml:6:5: packages[0]: "c" is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)`),
		body("package shell", "packages:\n  - curl\n  - "+q("curl; reboot")+"\n",
			`p.yaml:7:5: packages[1]: "curl; reboot" is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)`),
		body("package option", "packages:\n  - "+q("-oDebug=1")+"\n",
			`p.yaml:6:5: packages[0]: "-oDebug=1" is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)`),
	}
}

func TestProfileRules(t *testing.T) {
	for _, tc := range profileCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := config.DecodeProfile("p.yaml", []byte(tc.doc))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v\ndocument:\n%s", err, tc.doc)
				}
				if p == nil {
					t.Fatal("nil profile without error")
				}
				return
			}
			wantInputError(t, err, tc.want, tc.doc)
		})
	}
}

// TestProfileDefaults: an absent or null value takes its documented default.
func TestProfileDefaults(t *testing.T) {
	p, err := config.DecodeProfile("p.yaml", []byte(profHead+"ssh:\n  maxAuthTries: null\n  port:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.SSH.Port.Random || p.SSH.MaxAuthTries != 3 || p.SSH.LoginGraceTime != "30s" || p.SSH.Crypto != "compatible" {
		t.Errorf("ssh defaults: %+v", p.SSH)
	}
	if p.Admin.Name != "admin" || p.Admin.Sudo != "nopasswd" || p.Admin.Shell != "/bin/bash" {
		t.Errorf("admin defaults: %+v", p.Admin)
	}
	if p.Firewall.Backend != "auto" || !config.Bool(p.Firewall.Enabled, false) {
		t.Errorf("firewall defaults: %+v", p.Firewall)
	}
	d := p.Fail2ban.Defaults
	if d.Bantime != "10m" || d.Findtime != "10m" || d.Maxretry != 5 {
		t.Errorf("fail2ban defaults: %+v", d)
	}
	if _, ok := p.Fail2ban.Jails["sshd"]; !ok {
		t.Error("sshd jail not added")
	}
	if p.Updates.Unattended.Reboot != "none" || !config.Bool(p.Updates.UpgradeOnFirstBoot, false) {
		t.Errorf("updates defaults: %+v", p.Updates)
	}
	m, err := config.DecodeProfile("p.yaml", []byte(profHead+"updates:\n  mirror:\n    url: https://m.example/debian\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Updates.Mirror.Suites, ","); got != "$RELEASE,$RELEASE-updates" {
		t.Errorf("default suites %s", got)
	}
	if got := strings.Join(m.Updates.Mirror.Components, ","); got != "main" {
		t.Errorf("default components %s", got)
	}
}

// wantInputError fails unless err is an *InputError whose text is want.
func wantInputError(t *testing.T, err error, want, doc string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s\ndocument:\n%s", want, doc)
	}
	var ie *config.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %T is not an *InputError: %v", err, err)
	}
	if got := err.Error(); got != want {
		t.Errorf("error\n got: %s\nwant: %s\ndocument:\n%s", got, want, doc)
	}
	wantKnownCodes(t, ie)
}

// wantKnownCodes fails unless every entry of ie carries a listed code.
func wantKnownCodes(t *testing.T, ie *config.InputError) {
	t.Helper()
	for _, fe := range ie.Errs {
		if !slices.Contains(config.Codes(), fe.Code) {
			t.Errorf("%v: code %q is not in config.Codes()", fe, fe.Code)
		}
	}
}
