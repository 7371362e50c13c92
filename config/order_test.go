package config_test

import (
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
)

// yamlComment is a key comment made of YAML syntax; it must be accepted and
// reach the user-data unchanged.
const yamlComment = `: {x} [y] # "z" 'q' &a *b !tag |`

func mustProfile(t testing.TB, extra string) *config.Profile {
	t.Helper()
	p, err := config.DecodeProfile("p.yaml", []byte(profHead+extra))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// resolve decodes and resolves an order document against p.
func resolve(p *config.Profile, file, doc string) (*config.Machine, error) {
	o, src, err := config.DecodeOrder(file, []byte(doc))
	if err != nil {
		return nil, err
	}
	return o.Resolve(p, src)
}

type orderCase struct {
	name    string
	doc     string
	sudoPwd bool   // resolve against a profile with admin.sudo: password
	want    string // "" means valid
}

func orderCases(k testKeys) []orderCase {
	// head: hostname on line 1, one key on line 3; extra lines start at 4.
	head := "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n"
	withKey := func(key string) string { return "hostname: web1\nssh_keys:\n  - " + q(key) + "\n" }
	host := func(h string) string { return "hostname: " + h + "\nssh_keys:\n  - " + q(k.ed25519) + "\n" }
	label := strings.Repeat("a", 63)
	host253 := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".")
	host254 := host253 + "b"
	const hostRFC = `is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)`
	const badUser = `is not a valid user name (want ^[a-z_][a-z0-9_-]{0,31}$)`
	return []orderCase{
		{"minimal", head, false, ""},

		// hostname
		{"host fqdn", host("web-1.example.com"), false, ""},
		{"host digits", host(`"1234"`), false, `o.yaml:1:11: hostname: "1234" is not a valid hostname: its last label is all digits, so it reads as an IP address`},
		{"host dotted quad", host(`"10.0.0.1"`), false, `o.yaml:1:11: hostname: "10.0.0.1" is not a valid hostname: its last label is all digits, so it reads as an IP address`},
		{"host digits first label", host(`"1234.example.com"`), false, ""},
		{"host unquoted number", host("1234"), false, `o.yaml:1:11: hostname: must be a string, not the integer 1234`},
		{"host 63 label", host(label), false, ""},
		{"host 253", host(host253), false, ""},
		{"host 64 label", host(label + "a"),
			false, `o.yaml:1:11: hostname: "` + label + `a" ` + hostRFC},
		{"host 254", host(host254),
			false, `o.yaml:1:11: hostname: "` + host254 + `" is not a valid hostname (1–253 characters)`},
		{"host leading hyphen", host("-web"), false, `o.yaml:1:11: hostname: "-web" ` + hostRFC},
		{"host trailing hyphen", host("web-.example"), false, `o.yaml:1:11: hostname: "web-.example" ` + hostRFC},
		{"host underscore", host("web_1"), false, `o.yaml:1:11: hostname: "web_1" ` + hostRFC},
		{"host empty label", host("web..example"), false, `o.yaml:1:11: hostname: "web..example" ` + hostRFC},
		{"host trailing dot", host("web.example."), false, `o.yaml:1:11: hostname: "web.example." ` + hostRFC},
		{"host newline", host(q("web\nevil")), false, `o.yaml:1:11: hostname: "web\nevil" ` + hostRFC},
		{"host empty", host(`""`), false, `o.yaml:1:11: hostname: required (set it in the order or with --hostname)`},
		{"host missing", "ssh_keys:\n  - " + q(k.ed25519) + "\n",
			false, `o.yaml:1:1: hostname: required (set it in the order or with --hostname)`},

		// instance_id
		{"instance ok", head + "instance_id: i-0123.abc_DEF\n", false, ""},
		{"instance 128", head + "instance_id: " + strings.Repeat("i", 128) + "\n", false, ""},
		{"instance 129", head + "instance_id: " + strings.Repeat("i", 129) + "\n",
			false, `o.yaml:4:14: instance_id: "` + strings.Repeat("i", 129) + `" is not a valid instance-id (letters, digits, '.', '_', '-'; at most 128)`},
		{"instance space", head + "instance_id: i 1\n",
			false, `o.yaml:4:14: instance_id: "i 1" is not a valid instance-id (letters, digits, '.', '_', '-'; at most 128)`},
		{"instance leading dot", head + "instance_id: .i\n",
			false, `o.yaml:4:14: instance_id: ".i" is not a valid instance-id (letters, digits, '.', '_', '-'; at most 128)`},

		// admin_user
		{"admin_user ok", head + "admin_user: deploy\n", false, ""},
		{"admin_user root", head + "admin_user: root\n",
			false, `o.yaml:4:13: admin_user: "root" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`},
		{"admin_user sshd", head + "admin_user: sshd\n",
			false, `o.yaml:4:13: admin_user: "sshd" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`},
		{"admin_user bad", head + "admin_user: " + q("a b") + "\n", false, `o.yaml:4:13: admin_user: "a b" ` + badUser},

		// admin_password_hash
		{"hash required", head, true, `o.yaml:1:1: admin_password_hash: required: the profile's admin.sudo is password`},
		{"hash ok", head + "admin_password_hash: " + q("$6$saltsalt$"+strings.Repeat("x", 86)) + "\n", true, ""},
		{"hash yescrypt", head + "admin_password_hash: " + q("$y$j9T$abcdefgh$"+strings.Repeat("Z", 43)) + "\n", true, ""},
		{"hash plain", head + "admin_password_hash: hunter2\n",
			true, `o.yaml:4:22: admin_password_hash: must be a crypt(3) hash ($6$…, $y$…), never a plain password`},
		{"hash md5", head + "admin_password_hash: " + q("$1$saltsalt$abcdefghijkl") + "\n",
			true, `o.yaml:4:22: admin_password_hash: must be a crypt(3) hash ($6$…, $y$…), never a plain password`},
		{"hash newline", head + "admin_password_hash: " + q("$6$saltsalt$abc\ndef") + "\n",
			true, `o.yaml:4:22: admin_password_hash: must be a crypt(3) hash ($6$…, $y$…), never a plain password`},

		// ssh_keys
		{"keys none", "hostname: web1\nssh_keys: []\n",
			false, `o.yaml:2:11: ssh_keys: at least one SSH public key is required (--ssh-key or --ssh-key-file)`},
		{"keys absent", "hostname: web1\n",
			false, `o.yaml:1:1: ssh_keys: at least one SSH public key is required (--ssh-key or --ssh-key-file)`},
		{"key garbage", withKey("not a key"), false, `o.yaml:3:5: ssh_keys[0]: not an SSH public key: ssh: no key found; last parsing error for ignored line: illegal base64 data at input byte 0`},
		{"key dsa", withKey(k.dsa),
			false, `o.yaml:3:5: ssh_keys[0]: DSA keys are refused (broken and disabled in OpenSSH); use ed25519`},
		{"key rsa1024", withKey(k.rsa1024),
			false, `o.yaml:3:5: ssh_keys[0]: RSA key of 1024 bits is refused (at least 2048; ed25519 preferred)`},
		{"key rsa2048", withKey(k.rsa2048 + " alice@laptop"), false, ""},
		{"key ed25519", withKey(k.ed25519 + " bob"), false, ""},
		{"key ecdsa", withKey(k.ecdsa), false, ""},
		{"key two lines", "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n  - " + q(k.ecdsa) + "\n", false, ""},
		{"key options", withKey(`from="x" ` + k.ed25519),
			false, `o.yaml:3:5: ssh_keys[0]: authorized_keys options are not supported; give the bare key`},
		{"key command option", withKey(`command="reboot" ` + k.ed25519),
			false, `o.yaml:3:5: ssh_keys[0]: authorized_keys options are not supported; give the bare key`},
		{"key certificate", withKey(k.cert),
			false, `o.yaml:3:5: ssh_keys[0]: certificates are not supported; give the public key`},
		{"key two on one line", withKey(k.ed25519 + " " + k.ed25519b),
			false, `o.yaml:3:5: ssh_keys[0]: must hold exactly one key`},
		{"key two with comments", withKey(k.ed25519 + " a@b " + k.ecdsa + " c@d"),
			false, `o.yaml:3:5: ssh_keys[0]: must hold exactly one key`},
		{"key newline", withKey(k.ed25519 + "\n" + k.ed25519b),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key CR", withKey(k.ed25519 + " a\rb"),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key escape", withKey(k.ed25519 + " \x1b[31mred"),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key NUL", withKey(k.ed25519 + " a\x00b"),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key NEL", withKey(k.ed25519 + " a\u0085b"),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key U+2028", withKey(k.ed25519 + " a\u2028b"),
			false, `o.yaml:3:5: ssh_keys[0]: must be a single authorized_keys line without control characters`},
		{"key tab comment", withKey(k.ed25519 + "\tmy\tkey"), false, ""},
		{"key yaml comment", withKey(k.ed25519 + " " + yamlComment), false, ""},
		{"key second bad", "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n  - nope\n",
			false, `o.yaml:4:5: ssh_keys[1]: not an SSH public key: ssh: no key found`},

		// ssh_port
		{"port 2222", head + "ssh_port: 2222\n", false, ""},
		{"port 0", head + "ssh_port: 0\n", false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random", not 0`},
		{"port 22", head + "ssh_port: 22\n",
			false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random", and not 22 (the point is to move SSH off port 22)`},
		{"port 65536", head + "ssh_port: 65536\n", false, `o.yaml:4:11: ssh_port: must be 1–65535 or "random", not 65536`},
		{"port null", head + "ssh_port: null\n", false, ""},

		// allow
		{"allow ok", head + "allow: [\"80\", 53/udp, 443/tcp]\n", false, ""},
		{"allow sctp", head + "allow:\n  - 80/sctp\n", false, `o.yaml:5:5: allow[0]: "80/sctp": protocol must be tcp or udp`},
		{"allow 0", head + "allow:\n  - \"0\"\n", false, `o.yaml:5:5: allow[0]: "0": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal (must be 1–65535, not 0)`},
		{"allow x", head + "allow:\n  - x\n", false, `o.yaml:5:5: allow[0]: "x": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal ("x" is not a plain decimal number (digits only: no sign, no 0x/0o prefix, no _ or spaces))`},
		{"allow 65536", head + "allow:\n  - \"65536\"\n", false, `o.yaml:5:5: allow[0]: "65536": want PORT[/tcp|/udp] with PORT 1–65535 in plain decimal (must be 1–65535, not 65536)`},
		{"allow int", head + "allow:\n  - 80\n", false, `o.yaml:5:5: allow[0]: must be a string, not the integer 80`},
	}
}

func TestOrderRules(t *testing.T) {
	k := getKeys(t)
	plain := mustProfile(t, "")
	pwd := mustProfile(t, "admin:\n  sudo: password\n")
	for _, tc := range orderCases(k) {
		t.Run(tc.name, func(t *testing.T) {
			p := plain
			if tc.sudoPwd {
				p = pwd
			}
			m, err := resolve(p, "o.yaml", tc.doc)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v\ndocument:\n%s", err, tc.doc)
				}
				if m == nil || len(m.Keys) == 0 || m.InstanceID == "" || m.AdminUser == "" {
					t.Fatalf("incomplete machine %+v", m)
				}
				return
			}
			wantInputError(t, err, tc.want, tc.doc)
		})
	}
}

// TestKeyRoundTrip: accepted key lines are kept exactly, comments and all.
func TestKeyRoundTrip(t *testing.T) {
	k := getKeys(t)
	for _, line := range []string{
		k.ed25519 + " " + yamlComment,
		k.ed25519 + "\tmy\tkey",
		k.rsa2048 + " alice@laptop",
		k.ecdsa,
		k.ed25519 + " naïve café 🔑",
	} {
		m, err := resolve(mustProfile(t, ""), "o.yaml", "hostname: web1\nssh_keys:\n  - "+q(line)+"\n")
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := m.Keys[0].Line; got != line {
			t.Errorf("line changed:\n got %q\nwant %q", got, line)
		}
		if !strings.HasPrefix(m.Keys[0].Fingerprint, "SHA256:") {
			t.Errorf("fingerprint %q", m.Keys[0].Fingerprint)
		}
	}
}

// TestResolveDefaults: absent values come from the profile or are derived
// stably.
func TestResolveDefaults(t *testing.T) {
	k := getKeys(t)
	p := mustProfile(t, "admin:\n  name: ops\n")
	doc := "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\nallow: [\"80\", 53/udp]\n"
	m1, err := resolve(p, "o.yaml", doc)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := resolve(p, "o.yaml", doc)
	if err != nil {
		t.Fatal(err)
	}
	if m1.AdminUser != "ops" {
		t.Errorf("admin user %q, want the profile's ops", m1.AdminUser)
	}
	if m1.InstanceID != m2.InstanceID || !strings.HasPrefix(m1.InstanceID, "hb-") {
		t.Errorf("instance ids %q %q", m1.InstanceID, m2.InstanceID)
	}
	if len(m1.Allow) != 2 || m1.Allow[0].Port != 80 || m1.Allow[0].Proto != "tcp" || m1.Allow[1].Port != 53 || m1.Allow[1].Proto != "udp" {
		t.Errorf("allow %+v", m1.Allow)
	}
	// No Source at all (values from flags only) still validates.
	o := &config.Order{Hostname: "web1", SSHKeys: []string{k.ed25519}}
	if _, err := o.Resolve(p, nil); err != nil {
		t.Fatal(err)
	}
	o.Hostname = "bad host"
	if _, err := o.Resolve(p, nil); err == nil || err.Error() != `hostname: "bad host" is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1–63 characters)` {
		t.Errorf("flag-only error %v", err)
	}
}

// TestOrderFlagSource: an error about a value a flag set names the flag.
func TestOrderFlagSource(t *testing.T) {
	k := getKeys(t)
	o, src, err := config.DecodeOrder("o.yaml", []byte("hostname: web1\nssh_keys:\n  - "+q(k.ed25519)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	o.SSHPort = config.PortSpec{Value: 22}
	src.SetFlag("ssh_port", "--ssh-port")
	_, err = o.Resolve(mustProfile(t, ""), src)
	want := `--ssh-port: ssh_port: must be 1–65535 or "random", and not 22 (the point is to move SSH off port 22)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestParseKeyFile(t *testing.T) {
	k := getKeys(t)
	data := "# my keys\n\n" + k.ed25519 + " a\n" + k.rsa1024 + "\n  " + k.ecdsa + "  \n"
	_, err := config.ParseKeyFile("keys.pub", []byte(data))
	want := `keys.pub:4:1: RSA key of 1024 bits is refused (at least 2048; ed25519 preferred)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	got, err := config.ParseKeyFile("keys.pub", []byte("# my keys\n\n"+k.ed25519+" a\r\n  "+k.ecdsa+"  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != k.ed25519+" a" || got[1] != k.ecdsa {
		t.Errorf("keys %q", got)
	}
	if _, err := config.ParseKeyFile("keys.pub", []byte("# nothing\n")); err == nil || err.Error() != "keys.pub: no SSH public key in file" {
		t.Errorf("empty file: %v", err)
	}
}
