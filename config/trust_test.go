package config_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
)

// The tests of issue 9's classes at the config level: each case is refused
// with a message naming the field (or both fields) and why, or, where the
// value is legitimate, accepted. The CLI tests (testdata/script) show the
// same refusals end to end with exit code 2 and nothing written.

// Class 2: one meaning per number and per boolean, in YAML and JSON.
func TestOneMeaningPerNumberAndBool(t *testing.T) {
	const decimal = `is not a plain decimal number (digits only: no sign, no 0x/0o prefix, no _ or spaces)`
	const bools = `must be true or false (spelled so), not`
	const tag = `is not allowed here: it changes how readers take the value; write the value plainly`
	cases := []profCase{
		// ports
		body("port leading zero", "ssh:\n  port: 02222\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random": "02222" has a leading zero, which some readers take as octal; write it without`),
		body("port hex", "ssh:\n  port: 0x10\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random": "0x10" `+decimal),
		body("port octal 0o", "ssh:\n  port: 0o17\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random": "0o17" `+decimal),
		body("port plus", "ssh:\n  port: +2222\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random": "+2222" `+decimal),
		body("port underscore", "ssh:\n  port: 2_222\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random": "2_222" `+decimal),
		body("port float", "ssh:\n  port: 2222.0\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the number 2222.0`),
		body("port exponent", "ssh:\n  port: 2e3\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the number 2e3`),
		body("port Random", "ssh:\n  port: Random\n", `p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the string "Random"`),
		body("port tagged int", "ssh:\n  port: !!int \"2222\"\n", `p.yaml:6:9: ssh.port: explicit YAML tag "!!int" `+tag),
		body("port tagged str", "ssh:\n  port: !!str random\n", `p.yaml:6:9: ssh.port: explicit YAML tag "!!str" `+tag),
		body("port plain decimal", "ssh:\n  port: 2222\n", ""),
		body("maxAuthTries leading zero", "ssh:\n  maxAuthTries: 03\n", `p.yaml:6:17: ssh.maxAuthTries: "03" has a leading zero, which some readers take as octal; write it without`),
		body("service port octal", "firewall:\n  services:\n    - port: 0443\n", `p.yaml:7:13: firewall.services[0].port: "0443" has a leading zero, which some readers take as octal; write it without`),
		body("maxretry hex", "fail2ban:\n  defaults:\n    maxretry: 0x5\n", `p.yaml:7:15: fail2ban.defaults.maxretry: "0x5" `+decimal),
		body("duration leading zero", "ssh:\n  loginGraceTime: 030s\n", `p.yaml:6:19: ssh.loginGraceTime: "030s" is not a duration: "030" has a leading zero, which some readers take as octal; write it without`),
		// booleans
		body("bool tagged yes", "firewall:\n  enabled: !!bool yes\n", `p.yaml:6:12: firewall.enabled: explicit YAML tag "!!bool" `+tag),
		body("bool tagged true", "firewall:\n  enabled: !!bool true\n", `p.yaml:6:12: firewall.enabled: explicit YAML tag "!!bool" `+tag),
		body("bool tagged str", "firewall:\n  enabled: !!str false\n", `p.yaml:6:12: firewall.enabled: explicit YAML tag "!!str" `+tag),
		body("bool no", "fail2ban:\n  enabled: no\n", `p.yaml:6:12: fail2ban.enabled: `+bools+` the string "no"`),
		body("bool off", "fail2ban:\n  enabled: off\n", `p.yaml:6:12: fail2ban.enabled: `+bools+` the string "off"`),
		body("bool on", "sysctl:\n  hardening: on\n", `p.yaml:6:14: sysctl.hardening: `+bools+` the string "on"`),
		body("bool y", "sysctl:\n  hardening: y\n", `p.yaml:6:14: sysctl.hardening: `+bools+` the string "y"`),
		body("bool True", "sysctl:\n  hardening: True\n", `p.yaml:6:14: sysctl.hardening: `+bools+` the boolean True`),
		body("bool FALSE", "updates:\n  upgradeOnFirstBoot: FALSE\n", `p.yaml:6:23: updates.upgradeOnFirstBoot: `+bools+` the boolean FALSE`),
		body("bool quoted", "sysctl:\n  hardening: \"true\"\n", `p.yaml:6:14: sysctl.hardening: `+bools+` the string "true"`),
		body("bool 0", "sysctl:\n  hardening: 0\n", `p.yaml:6:14: sysctl.hardening: `+bools+` the integer 0`),
		body("bool false ok", "firewall:\n  enabled: false\n", ""),
		// tags elsewhere
		body("tagged string ok", "updates:\n  unattended:\n    reboot: !!str 04:00\n", ""),
		body("tagged mapping", "ssh: !!map\n  port: 2222\n", `p.yaml:5:6: ssh: explicit YAML tag "!!map" `+tag),
		body("tagged null", "ssh:\n  port: !!null\n", `p.yaml:6:9: ssh.port: explicit YAML tag "!!null" `+tag),
		body("binary tag", "metadata:\n  description: !!binary aGk=\n", ``),
		// JSON
		{"json port leading zero", `{"apiVersion": "hardbake.dev/v1", "kind": "Profile", "metadata": {"name": "web"}, "ssh": {"port": 02222}}`,
			`p.yaml:1:99: ssh.port: must be 1–65535 or "random": "02222" has a leading zero, which some readers take as octal; write it without`},
		{"json port float", `{"apiVersion": "hardbake.dev/v1", "kind": "Profile", "metadata": {"name": "web"}, "ssh": {"port": 2222.0}}`,
			`p.yaml:1:99: ssh.port: must be 1–65535 or "random", not the number 2222.0`},
		{"json bool ok", `{"apiVersion": "hardbake.dev/v1", "kind": "Profile", "metadata": {"name": "web"}, "sysctl": {"hardening": true}}`, ""},
		// empty values are not "default"
		body("empty crypto", "ssh:\n  crypto: \"\"\n", `p.yaml:6:11: ssh.crypto: must be compatible, modern or openssh, not ""`),
		body("empty bantime", "fail2ban:\n  jails:\n    sshd:\n      bantime: \"\"\n", `p.yaml:8:16: fail2ban.jails.sshd.bantime: "" is not a duration (a number and one of s, m, h, d, w: e.g. 10m)`),
		body("empty suites", "updates:\n  mirror:\n    url: https://m.example/debian\n    suites: []\n", `p.yaml:8:13: updates.mirror.suites: must list at least 1 item(s); leave it out for the default`),
	}
	for i := range cases {
		if cases[i].name == "binary tag" {
			cases[i].doc = profHead + "  description: !!binary aGk=\n"
			cases[i].want = `p.yaml:5:16: metadata.description: explicit YAML tag "!!binary" ` + tag
		}
	}
	runProfileCases(t, cases)

	k := getKeys(t)
	head := "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n"
	orders := []orderCase{
		{"order port leading zero", head + "ssh_port: 02222\n", false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random": "02222" has a leading zero, which some readers take as octal; write it without`},
		{"order port hex", head + "ssh_port: 0x10\n", false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random": "0x10" ` + decimal},
		{"order port 0", head + "ssh_port: 0\n", false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random", not 0`},
		{"order port random", head + "ssh_port: random\n", false, ""},
		{"order allow leading zero", head + "allow: [\"080\"]\n", false, `o.yaml:4:9: allow[0]: "080": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal ("080" has a leading zero, which some readers take as octal; write it without)`},
		{"order allow plus", head + "allow: [\"+80/tcp\"]\n", false, `o.yaml:4:9: allow[0]: "+80/tcp": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal ("+80" ` + decimal + `)`},
		{"order allow hex", head + "allow: [0x50/udp]\n", false, `o.yaml:4:9: allow[0]: "0x50/udp": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal ("0x50" ` + decimal + `)`},
		{"order json port leading zero", `{"hostname": "web1", "ssh_keys": [` + q(k.ed25519) + `], "ssh_port": 010}`, false, ``},
	}
	orders[len(orders)-1].want = `o.yaml:1:` + itoa(len(`{"hostname": "web1", "ssh_keys": [`+q(k.ed25519)+`], "ssh_port": `)+1) + `: ssh_port: must be 1–65535 or "random": "010" has a leading zero, which some readers take as octal; write it without`
	runOrderCases(t, mustProfile(t, ""), orders)
}

// TestParsePortAndBool: the flag parsers are the decoder's parsers.
func TestParsePortAndBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.PortSpec
		ok   bool
	}{
		{"2222", config.PortSpec{Value: 2222}, true}, {"random", config.PortSpec{Random: true}, true},
		{"1", config.PortSpec{Value: 1}, true}, {"65535", config.PortSpec{Value: 65535}, true},
		{"0", config.PortSpec{}, false}, {"02222", config.PortSpec{}, false}, {"0x10", config.PortSpec{}, false},
		{"+1", config.PortSpec{}, false}, {"-1", config.PortSpec{}, false}, {"65536", config.PortSpec{}, false},
		{"Random", config.PortSpec{}, false}, {"", config.PortSpec{}, false}, {" 22", config.PortSpec{}, false},
		{"99999999999999999999", config.PortSpec{}, false}, {"２２２２", config.PortSpec{}, false},
	} {
		got, reason := config.ParsePort(tc.in)
		if (reason == "") != tc.ok || got != tc.want {
			t.Errorf("ParsePort(%q) = %+v, %q", tc.in, got, reason)
		}
	}
	for in, want := range map[string]int{"0": 0, "7": 7, "16384": 16384, "010": -1, "0x10": -1, "+1": -1, "-1": -1, "1_0": -1, "": -1, " 1": -1, "1e3": -1, "1234567890": -1} {
		got, reason := config.ParseDecimal(in)
		if (reason == "") != (want >= 0) || (want >= 0 && got != want) {
			t.Errorf("ParseDecimal(%q) = %d, %q", in, got, reason)
		}
	}
	for in, want := range map[string]int{"true": 1, "false": 0, "1": -1, "t": -1, "T": -1, "TRUE": -1, "True": -1, "yes": -1, "on": -1, "": -1} {
		got, reason := config.ParseBool(in)
		if (reason == "") != (want >= 0) || (want == 1) != got {
			t.Errorf("ParseBool(%q) = %v, %q", in, got, reason)
		}
	}
}

// Class 3: fields that contradict each other; each message names both.
func TestContradictions(t *testing.T) {
	runProfileCases(t, []profCase{
		body("service on ssh port", "ssh:\n  port: 2222\nfirewall:\n  services:\n    - port: 2222\n",
			`p.yaml:9:13: firewall.services[0].port: 2222/tcp is the SSH port (ssh.port): SSH is always allowed; declare the service on another port or move ssh.port`),
		body("udp on ssh port number", "ssh:\n  port: 2222\nfirewall:\n  services:\n    - port: 2222\n      proto: udp\n", ""),
		body("random ssh with services", "ssh:\n  port: random\nfirewall:\n  services:\n    - port: 49152\n", ""),
	})
	k := getKeys(t)
	head := "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n"
	restricted := mustProfile(t, "firewall:\n  services:\n    - port: 5432\n      sources: [10.0.0.0/8]\n    - port: 443\n")
	runOrderCases(t, restricted, []orderCase{
		{"order ssh port on service", head + "ssh_port: 443\n", false,
			`o.yaml:4:11: ssh_port: 443 is also the profile's firewall.services[1].port (tcp); choose another SSH port`},
		{"allow on order ssh port", head + "ssh_port: 2200\nallow: [\"2200\"]\n", false,
			`o.yaml:5:9: allow[0]: 2200/tcp is the SSH port (ssh_port), which is always open; remove it from allow`},
		{"allow widens restricted", head + "allow: [5432/tcp]\n", false,
			`o.yaml:4:9: allow[0]: 5432/tcp would open firewall.services[0] to every source, but the profile restricts it to firewall.services[0].sources; drop it from the order or change the profile`},
		{"allow other proto of restricted", head + "allow: [5432/udp]\n", false, ""},
		{"allow repeats open service", head + "allow: [\"443\"]\n", false, ""},
		{"hash with nopasswd", head + "admin_password_hash: \"$6$saltsalt$abcdefghijklmnopqrstuv\"\n", false,
			`o.yaml:4:22: admin_password_hash: given, but the profile's admin.sudo is nopasswd: the hash would be ignored; leave it out or use a profile with admin.sudo: password`},
	})
	fixed := mustProfile(t, "ssh:\n  port: 2222\nadmin:\n  groups: [ops]\n")
	runOrderCases(t, fixed, []orderCase{
		{"allow on profile ssh port", head + "allow: [\"2222/tcp\"]\n", false,
			`o.yaml:4:9: allow[0]: 2222/tcp is the SSH port (the profile's ssh.port), which is always open; remove it from allow`},
		{"allow udp on ssh port number", head + "allow: [\"2222/udp\"]\n", false, ""},
		{"admin user is a profile group", head + "admin_user: ops\n", false,
			`o.yaml:4:13: admin_user: "ops" is also the profile's admin.groups[0]: cloud-init would create the group first and useradd would then fail`},
	})
}

// Class 4: secrets and dead URLs.
func TestMirrorURLAndKey(t *testing.T) {
	mirror := func(url string) string { return "updates:\n  mirror:\n    url: " + url + "\n" }
	const mirrorOK = "updates:\n  mirror:\n    url: https://deb.example.net/debian\n"
	const creds = `holds credentials, which would land in a world-readable sources.list; give the URL without user:password@ and put credentials in /etc/apt/auth.conf.d by other means`
	runProfileCases(t, []profCase{
		body("userinfo", mirror("https://bob:s3cret@m.example/debian"), `p.yaml:7:10: updates.mirror.url: "https://bob:REDACTED@m.example/debian" `+creds),
		body("user only", mirror("https://bob@m.example/debian"), `p.yaml:7:10: updates.mirror.url: "https://bob:REDACTED@m.example/debian" `+creds),
		body("upper scheme", mirror("HTTPS://m.example/debian"), `p.yaml:7:10: updates.mirror.url: "HTTPS://m.example/debian" must be an http or https URL (scheme in lower case)`),
		body("mixed scheme", mirror("Http://m.example/debian"), `p.yaml:7:10: updates.mirror.url: "Http://m.example/debian" must be an http or https URL (scheme in lower case)`),
		body("port 0", mirror("http://m.example:0/debian"), `p.yaml:7:10: updates.mirror.url: "http://m.example:0/debian": port must be 1–65535, not 0`),
		body("port 65536", mirror("http://m.example:65536/debian"), `p.yaml:7:10: updates.mirror.url: "http://m.example:65536/debian": port must be 1–65535, not 65536`),
		body("port leading zero", mirror("http://m.example:080/debian"), `p.yaml:7:10: updates.mirror.url: "http://m.example:080/debian": port "080" has a leading zero, which some readers take as octal; write it without`),
		body("port empty", mirror("http://m.example:/debian"), `p.yaml:7:10: updates.mirror.url: "http://m.example:/debian": port is empty; want a decimal number`),
		body("host label hyphen", mirror("http://-m.example/debian"), `p.yaml:7:10: updates.mirror.url: "http://-m.example/debian": host "-m.example" is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)`),
		body("host empty label", mirror("http://m..example/debian"), `p.yaml:7:10: updates.mirror.url: "http://m..example/debian": host "m..example" is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)`),
		body("host trailing dot", mirror("http://m.example./debian"), `p.yaml:7:10: updates.mirror.url: "http://m.example./debian": host "m.example." is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)`),
		body("host bad ipv4", mirror("http://999.1.1.1/debian"), `p.yaml:7:10: updates.mirror.url: "http://999.1.1.1/debian": host "999.1.1.1" is not an IPv4 address`),
		body("host ipv6", mirror("http://[2001:db8::1]/debian"), `p.yaml:7:10: updates.mirror.url: "http://[2001:db8::1]/debian" contains characters not allowed in a mirror URL`),
		body("host percent", mirror("http://m%2eexample/debian"), `p.yaml:7:10: updates.mirror.url: "http://m%2eexample/debian": host "m%2eexample" is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)`),
		body("bad escape", mirror("http://m.example/%zz"), `p.yaml:7:10: updates.mirror.url: "http://m.example/%zz": the path may hold only letters, digits, ._~!&()*+,;=:/- and %XX escapes`),
		body("ipv4 ok", mirror("http://10.0.0.1:8080/debian"), ""),
		body("host digit label ok", mirror("http://1and1.example/debian"), ""),
		body("escape ok", mirror("https://m.example/deb%20ian/"), ""),
		body("no path ok", mirror("https://m.example"), ""),
		body("key not openpgp", mirrorOK+"    key: |\n"+indent(6, armorOf(t, []byte("hello, this is not a key")))+"\n",
			`p.yaml:8:10: updates.mirror.key: is not an OpenPGP public key: openpgp: invalid data: tag byte does not have MSB set`),
		body("key empty armour", mirrorOK+"    key: |\n"+indent(6, armorOf(t, nil))+"\n",
			`p.yaml:8:10: updates.mirror.key: holds no OpenPGP key`),
		body("key checksum", mirrorOK+"    key: |\n"+indent(6, strings.Replace(armoredKey, "=RPR1", "=AAAA", 1))+"\n",
			`p.yaml:8:10: updates.mirror.key: armour checksum does not match the key (damaged in copying?)`),
	})
}

// Class 8: nothing from the input prints raw. Keys and values with control
// characters, terminal escapes and line separators come out escaped.
func TestMessagesQuoteInput(t *testing.T) {
	for _, doc := range []string{
		profHead + "\"evil\\x1b[2J\\nhardbake: wrote out\": 1\n",
		profHead + "ssh:\n  \"p\\u202eort\": 2222\n",
		profHead + "fail2ban:\n  jails:\n    \"x\\ry\": {}\n",
		profHead + "ssh:\n  crypto: !<tag:\\x1b[31m> modern\n",
		profHead + "sysctl:\n  hardening: \"\\x1b[31m\"\n",
		profHead + "packages: [\"a\\x1b[31m\"]\n",
		profHead + "admin:\n  name: \"a\\u0085b\"\n",
	} {
		_, err := config.DecodeProfile("p\x1b.yaml", []byte(doc))
		if err == nil {
			t.Errorf("accepted:\n%s", doc)
			continue
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if strings.ContainsFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Errorf("raw non-printable text in %q", line)
			}
			if strings.HasPrefix(line, "hardbake:") {
				t.Errorf("a key forged a line: %q", line)
			}
		}
	}
	_, err := config.DecodeProfile("p.yaml", []byte(profHead+"\"evil\\x1b[2J\": 1\n"))
	if want := `p.yaml:5:1: "evil\x1b[2J": unknown key`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want prefix %s", err, want)
	}
}

func runProfileCases(t *testing.T, cases []profCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := config.DecodeProfile("p.yaml", []byte(tc.doc))
			if tc.want == "" {
				if err != nil || p == nil {
					t.Fatalf("unexpected error:\n%v\ndocument:\n%s", err, tc.doc)
				}
				return
			}
			wantInputError(t, err, tc.want, tc.doc)
		})
	}
}

func runOrderCases(t *testing.T, p *config.Profile, cases []orderCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := resolve(p, "o.yaml", tc.doc)
			if tc.want == "" {
				if err != nil || m == nil {
					t.Fatalf("unexpected error:\n%v\ndocument:\n%s", err, tc.doc)
				}
				return
			}
			wantInputError(t, err, tc.want, tc.doc)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// armorOf wraps body in a public-key armour with a correct checksum.
func armorOf(t *testing.T, body []byte) string {
	t.Helper()
	var b strings.Builder
	w, err := armor.Encode(&b, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPortSpecRoundTrip: writing a port back and reading it again keeps its
// meaning; an absent port never turns into "random".
func TestPortSpecRoundTrip(t *testing.T) {
	for _, ps := range []config.PortSpec{{}, {Random: true}, {Value: 2222}} {
		out, err := yaml.Marshal(config.Order{SSHPort: ps})
		if err != nil {
			t.Fatal(err)
		}
		o, _, err := config.DecodeOrder("o.yaml", out)
		if err != nil {
			t.Fatalf("%+v: %v\n%s", ps, err, out)
		}
		if o.SSHPort != ps {
			t.Errorf("%+v came back as %+v:\n%s", ps, o.SSHPort, out)
		}
	}
}
