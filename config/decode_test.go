package config_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/templates"
)

const allowedTop = "admin, apiVersion, backup, edge, fail2ban, firewall, kind, metadata, packages, ssh, sysctl, system, updates"

func TestDecoder(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		// unknown keys
		{"unknown top", profHead + "foo: 1\n", `p.yaml:5:1: foo: unknown key (allowed: ` + allowedTop + `)`},
		{"unknown nested", profHead + "ssh:\n  Port: 2222\n",
			`p.yaml:6:3: ssh.Port: unknown key (allowed: allowGroups, allowUsers, crypto, forwarding, loginGraceTime, maxAuthTries, maxSessions, port)`},
		{"unknown in list item", profHead + "firewall:\n  services:\n    - port: 80\n      source: [10.0.0.0/8]\n",
			`p.yaml:8:7: firewall.services[0].source: unknown key (allowed: port, proto, sources)`},
		{"non-string key", profHead + "1: x\n", `p.yaml:5:1: 1: keys must be strings, not the integer 1`},

		// wrong types
		{"string for int", profHead + "ssh:\n  maxAuthTries: three\n",
			`p.yaml:6:17: ssh.maxAuthTries: must be an integer, not the string "three"`},
		{"quoted int", profHead + "ssh:\n  maxAuthTries: \"3\"\n",
			`p.yaml:6:17: ssh.maxAuthTries: must be an integer, not the string "3"`},
		{"float for int", profHead + "ssh:\n  maxAuthTries: 3.5\n",
			`p.yaml:6:17: ssh.maxAuthTries: must be an integer, not the number 3.5`},
		{"huge int", profHead + "ssh:\n  maxAuthTries: 9223372036854775807\n",
			`p.yaml:6:17: ssh.maxAuthTries: "9223372036854775807" is out of range`},
		{"list for int", profHead + "ssh:\n  maxAuthTries: [3]\n",
			`p.yaml:6:17: ssh.maxAuthTries: must be an integer, not a list`},
		{"int for string", profHead + "ssh:\n  crypto: 5\n", `p.yaml:6:11: ssh.crypto: must be a string, not the integer 5`},
		{"bool for string", profHead + "ssh:\n  crypto: true\n", `p.yaml:6:11: ssh.crypto: must be a string, not the boolean true`},
		{"mapping for string", profHead + "ssh:\n  crypto: {a: b}\n", `p.yaml:6:11: ssh.crypto: must be a string, not a mapping`},
		{"yes is not a bool", profHead + "sysctl:\n  hardening: yes\n",
			`p.yaml:6:14: sysctl.hardening: must be true or false (spelled so), not the string "yes"`},
		{"int for bool", profHead + "sysctl:\n  hardening: 1\n",
			`p.yaml:6:14: sysctl.hardening: must be true or false (spelled so), not the integer 1`},
		{"string for list", profHead + "packages: curl\n", `p.yaml:5:11: packages: must be a list, not the string "curl"`},
		{"mapping for list", profHead + "packages: {curl: 1}\n", `p.yaml:5:11: packages: must be a list, not a mapping`},
		{"int for mapping", profHead + "ssh: 5\n", `p.yaml:5:6: ssh: must be a mapping, not the integer 5`},
		{"list for mapping", profHead + "fail2ban:\n  jails: [sshd]\n", `p.yaml:6:10: fail2ban.jails: must be a mapping, not a list`},
		{"root list", "- a\n- b\n", `p.yaml:1:1: must be a mapping, not a list`},
		{"root scalar", "hello\n", `p.yaml:1:1: must be a mapping, not the string "hello"`},
		{"tagged", profHead + "ssh:\n  crypto: !custom modern\n", `p.yaml:6:11: ssh.crypto: explicit YAML tag "!custom" is not allowed here: it changes how readers take the value; write the value plainly`},

		// duplicates
		{"duplicate top", profHead + "kind: Profile\n", `p.yaml:5:1: kind: duplicate key "kind" (first defined on line 2)`},
		{"duplicate nested", profHead + "ssh:\n  port: 2222\n  crypto: modern\n  port: 2223\n",
			`p.yaml:8:3: ssh.port: duplicate key "port" (first defined on line 6)`},

		// empty and multiple documents
		{"empty", "", `p.yaml: empty document`},
		{"whitespace", "  \n\n\t\n", `p.yaml: empty document`},
		{"comment only", "# nothing here\n# at all\n", `p.yaml: empty document`},
		{"separator only", "---\n", `p.yaml: empty document`},
		{"separator and comment", "--- # nothing\n...\n", `p.yaml: empty document`},
		{"null", "null\n", `p.yaml: empty document`},
		{"tilde", "# empty\n~\n", `p.yaml: empty document`},
		{"two documents", profHead + "---\nfoo: 1\n", `p.yaml:5:1: only one document is allowed`},
		{"empty second document", profHead + "---\n", `p.yaml:5:1: only one document is allowed`},

		// aliases
		{"alias ok", profHead + "admin:\n  groups: &g [sshusers]\nssh:\n  allowGroups: *g\n", ""},
		{"alias to bad value", profHead + "admin:\n  groups: &g [Bad]\nssh:\n  allowGroups: *g\n",
			"p.yaml:6:15: ssh.allowGroups[0]: \"Bad\" is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)\n" +
				"p.yaml:6:15: admin.groups[0]: \"Bad\" is not a valid group name (want ^[a-z_][a-z0-9_-]{0,31}$)"},
		{"merge key", profHead + "fail2ban:\n  defaults: &d\n    bantime: 10m\n  jails:\n    sshd:\n      <<: *d\n",
			`p.yaml:10:7: fail2ban.jails.sshd."<<": merge keys (<<) are not supported; write the values out`},

		// syntax: yaml.v3 names the line of the construct being parsed
		// (for parser errors counted from 0), not always the bad line.
		{"unclosed flow", profHead + "packages: [curl\n", `p.yaml:4:1: invalid YAML: did not find expected ',' or ']'`},
		{"tab indent", profHead + "ssh:\n\tport: 2222\n", `p.yaml:6:1: invalid YAML: found character that cannot start any token`},
		{"bad indent", profHead + "ssh:\n  port: 2222\n crypto: modern\n", `p.yaml:6:1: invalid YAML: did not find expected key`},
		{"syntax in second document", profHead + "---\n[\n", `p.yaml:6:1: invalid YAML: did not find expected node content`},
		{"undefined alias", profHead + "packages: *nope\n", `p.yaml: invalid YAML: unknown anchor 'nope' referenced`},

		// encodings
		{"BOM", "\ufeff" + profHead, ""},
		{"CRLF", strings.ReplaceAll(profHead+"ssh:\n  port: 22\n", "\n", "\r\n"),
			`p.yaml:6:9: ssh.port: must be 1–65535 or "random", and not 22 (the point is to move SSH off port 22)`},
		{"JSON profile", `{"apiVersion": "hardbake.dev/v1", "kind": "Profile",` + "\n" + ` "metadata": {"name": "web"},` + "\n" + ` "ssh": {"port": "22"}}`,
			`p.yaml:3:18: ssh.port: must be 1–65535 or "random", not the string "22"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.DecodeProfile("p.yaml", []byte(tc.doc))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			var ie *config.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an *InputError: %v", err, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error\n got: %s\nwant: %s\ndocument:\n%s", got, tc.want, tc.doc)
			}
		})
	}
}

// TestErrorsTogetherInFileOrder: every problem is reported in one error,
// sorted by position whatever order validation found them in.
func TestErrorsTogetherInFileOrder(t *testing.T) {
	doc := "packages: [Bad]\n" + // validated last
		"ssh:\n  port: 22\n  crypto: fips\n" +
		"apiVersion: v0\n" +
		"kind: Profile\n" +
		"metadata:\n  name: web\n" +
		"admin:\n  name: root\n"
	want := strings.Join([]string{
		`p.yaml:1:12: packages[0]: "Bad" is not a Debian package name (2–100 of a-z 0-9 + . -, starting with a letter or digit, not ending in - or .; no =version, /release or :arch)`,
		`p.yaml:3:9: ssh.port: must be 1–65535 or "random", and not 22 (the point is to move SSH off port 22)`,
		`p.yaml:4:11: ssh.crypto: must be compatible, modern or openssh, not "fips"`,
		`p.yaml:5:13: apiVersion: must be "hardbake.dev/v1", not "v0"`,
		`p.yaml:10:9: admin.name: "root" is root or a user or group that Debian and Ubuntu images already have (useradd would fail and leave no admin); choose another name`,
	}, "\n")
	_, err := config.DecodeProfile("p.yaml", []byte(doc))
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	var ie *config.InputError
	if !errors.As(err, &ie) || len(ie.Errs) != 5 {
		t.Fatalf("want 5 field errors, got %v", err)
	}
	if fe := ie.Errs[1]; fe.File != "p.yaml" || fe.Pos != (config.Pos{Line: 3, Col: 9}) || fe.Path != "ssh.port" {
		t.Errorf("field error %+v", fe)
	}

	// Decoding errors are collected the same way.
	doc = profHead + "ssh:\n  port: x\n  bogus: 1\nsysctl:\n  hardening: 2\n"
	want = strings.Join([]string{
		`p.yaml:6:9: ssh.port: must be 1–65535 or "random", not the string "x"`,
		`p.yaml:7:3: ssh.bogus: unknown key (allowed: allowGroups, allowUsers, crypto, forwarding, loginGraceTime, maxAuthTries, maxSessions, port)`,
		`p.yaml:9:14: sysctl.hardening: must be true or false (spelled so), not the integer 2`,
	}, "\n")
	if _, err := config.DecodeProfile("p.yaml", []byte(doc)); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestOrderDecoding(t *testing.T) {
	k := getKeys(t)
	p := mustProfile(t, "")
	json := "{\n  \"hostname\": \"web1\",\n  \"ssh_keys\": [\"" + k.ed25519 + " " + strings.ReplaceAll(yamlComment, `"`, `\"`) + "\"],\n  \"ssh_port\": 2222,\n  \"allow\": [\"80\", \"53/udp\"]\n}\n"
	m, err := resolve(p, "o.json", json)
	if err != nil {
		t.Fatal(err)
	}
	if m.Hostname != "web1" || m.SSHPort.Value != 2222 || len(m.Allow) != 2 || m.Keys[0].Line != k.ed25519+" "+yamlComment {
		t.Errorf("machine %+v", m)
	}
	cases := []struct{ name, doc, want string }{
		{"json positions", "{\n  \"hostname\": \"web1\",\n  \"ssh_keys\": [123],\n  \"ssh_port\": \"22\"\n}\n",
			"o.json:3:16: ssh_keys[0]: must be a string, not the integer 123\n" +
				"o.json:4:15: ssh_port: must be 1–65535 or \"random\", not the string \"22\""},
		{"json unknown key", "{\"hostname\": \"web1\", \"sshkeys\": []}",
			`o.json:1:22: sshkeys: unknown key (allowed: admin_password_hash, admin_user, allow, hostname, instance_id, ssh_keys, ssh_port)`},
		{"json duplicate", "{\"hostname\": \"a\",\n \"hostname\": \"b\"}", `o.json:2:2: hostname: duplicate key "hostname" (first defined on line 1)`},
		{"json syntax", "{\"hostname\": \"web1\",\n", `o.json:1:1: invalid YAML: did not find expected node content`},
		{"json empty", "", `o.json: empty document`},
		{"json null", "null", `o.json: empty document`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolve(p, "o.json", tc.doc)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// TestBuiltinProfiles: every built-in profile decodes and validates.
func TestBuiltinProfiles(t *testing.T) {
	names := templates.ProfileNames()
	if len(names) < 2 {
		t.Fatalf("built-in profiles %v", names)
	}
	k := getKeys(t)
	for _, name := range names {
		data, ok := templates.Profile(name)
		if !ok {
			t.Fatalf("%s: listed but not readable", name)
		}
		p, err := config.DecodeProfile(name+".yaml", data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Metadata.Name != name {
			t.Errorf("%s: metadata.name is %q", name, p.Metadata.Name)
		}
		if !config.LooksLikeProfile(data) {
			t.Errorf("%s: LooksLikeProfile false", name)
		}
		if _, err := resolve(p, "o.yaml", "hostname: web1\nssh_keys:\n  - "+q(k.ed25519)+"\n"); err != nil {
			t.Errorf("%s: minimal order: %v", name, err)
		}
	}
	if _, ok := templates.Profile("no-such-profile"); ok {
		t.Error("unknown profile found")
	}
	if config.LooksLikeProfile([]byte("hostname: web1\nssh_keys: []\n")) {
		t.Error("an order looks like a profile")
	}
}

// TestAliasExpansionBounded: a small document whose aliases name one list
// thousands of times is refused instead of expanding to millions of values.
func TestAliasExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(profHead + "firewall:\n  services:\n    - port: 1\n      sources: &s [")
	const k = 1000
	for i := 0; i < k; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("10.0.0.0/8")
	}
	b.WriteString("]\n")
	for i := 2; i <= k; i++ {
		b.WriteString("    - {port: " + strconv.Itoa(i) + ", sources: *s}\n")
	}
	start := time.Now()
	_, err := config.DecodeProfile("p.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "document too complex: more than 100000 values") {
		t.Fatalf("want a too-complex error, got %.300v", err)
	}
	if ie := err.(*config.InputError); len(ie.Errs) != 1 {
		t.Errorf("want just the too-complex error, got %d errors", len(ie.Errs))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// The same services written out with fewer sources are fine.
	small := strings.Replace(b.String(), "&s [", "&s [192.0.2.0/24,", 1)
	small = small[:strings.Index(small, "    - {port: 51,")]
	if _, err := config.DecodeProfile("p.yaml", []byte(small)); err != nil {
		t.Fatalf("%.300v", err)
	}
}
