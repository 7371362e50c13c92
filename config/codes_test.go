package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
)

// TestCodes: each check answers with its own code, at the key path it
// names, and every listed code is produced by some input (a code no check
// uses is a promise to API clients nobody keeps).
func TestCodes(t *testing.T) {
	k := getKeys(t)
	const meta = "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata:\n" // a whole document
	head := "hostname: web1\nssh_keys:\n  - " + q(k.ed25519) + "\n"
	type tc struct {
		name  string
		order bool   // doc is an order resolved against the profile base
		base  string // profile body for orders
		doc   string // a profile body (after profHead) or whole profile, or a whole order
		path  string
		code  config.Code
	}
	cases := []tc{
		{name: "syntax", doc: "ssh: [\n", code: config.CodeSyntax},
		{name: "multiple documents", doc: "---\nx: 1\n", code: config.CodeMultipleDocuments},
		{name: "explicit tag", doc: "firewall:\n  enabled: !!bool yes\n", path: "firewall.enabled", code: config.CodeExplicitTag},
		{name: "wrong type", doc: "ssh:\n  maxAuthTries: [3]\n", path: "ssh.maxAuthTries", code: config.CodeWrongType},
		{name: "bool spelling", doc: "firewall:\n  enabled: yes\n", path: "firewall.enabled", code: config.CodeWrongType},
		{name: "number spelling", doc: "ssh:\n  maxAuthTries: 03\n", path: "ssh.maxAuthTries", code: config.CodeNumberSpelling},
		{name: "merge key", doc: "x: &a {port: 2222}\nssh:\n  <<: *a\n", path: `ssh."<<"`, code: config.CodeMergeKey},
		{name: "duplicate key", doc: "ssh:\n  port: 2222\n  port: 2223\n", path: "ssh.port", code: config.CodeDuplicateKey},
		{name: "unknown key", doc: "ssh:\n  colour: blue\n", path: "ssh.colour", code: config.CodeUnknownKey},
		{name: "too few items", doc: "updates:\n  mirror:\n    url: https://m.example/debian\n    suites: []\n", path: "updates.mirror.suites", code: config.CodeTooFewItems},
		{name: "enum", doc: "ssh:\n  crypto: weak\n", path: "ssh.crypto", code: config.CodeInvalidChoice},
		{name: "ssh on 22", doc: "ssh:\n  port: 22\n", path: "ssh.port", code: config.CodeInvalidPort},
		{name: "port out of range", doc: "ssh:\n  port: 70000\n", path: "ssh.port", code: config.CodeInvalidPort},
		{name: "login name rule", doc: "admin:\n  name: disk\n", path: "admin.name", code: config.CodeInvalidLoginName},
		{name: "shell rule", doc: "admin:\n  shell: /usr/sbin/nologin\n", path: "admin.shell", code: "invalid-shell"},
		{name: "package rule", doc: "packages: [openssh-server-]\n", path: "packages[0]", code: "invalid-package"},
		{name: "cidr rule", doc: "firewall:\n  services:\n    - port: 443\n      sources: [10.0.0.1/8]\n", path: "firewall.services[0].sources[0]", code: "invalid-cidr"},
		{name: "unknown top key", doc: "x: 1\n", path: "x", code: config.CodeUnknownKey},
		{name: "profile name rule", doc: meta + "  name: Web\n", path: "metadata.name", code: "invalid-profile-name"},
		{name: "description rule", doc: meta + "  name: web\n  description: \"a\\nb\"\n", path: "metadata.description", code: "invalid-one-line"},
		{name: "reboot rule", doc: "updates:\n  unattended:\n    reboot: \"25:00\"\n", path: "updates.unattended.reboot", code: "invalid-reboot-time"},
		{name: "mirror url rule", doc: "updates:\n  mirror:\n    url: ftp://m.example/debian\n", path: "updates.mirror.url", code: "invalid-mirror-url"},
		{name: "suite rule", doc: "updates:\n  mirror:\n    url: https://m.example/debian\n    suites: [\"a b\"]\n", path: "updates.mirror.suites[0]", code: "invalid-suite"},
		{name: "component rule", doc: "updates:\n  mirror:\n    url: https://m.example/debian\n    components: [\"a b\"]\n", path: "updates.mirror.components[0]", code: "invalid-component"},
		{name: "key rule", doc: "updates:\n  mirror:\n    url: https://m.example/debian\n    key: nonsense\n", path: "updates.mirror.key", code: "invalid-openpgp-key"},
		{name: "max auth tries rule", doc: "ssh:\n  maxAuthTries: 11\n", path: "ssh.maxAuthTries", code: "invalid-max-auth-tries"},
		{name: "login grace rule", doc: "ssh:\n  loginGraceTime: 1h\n", path: "ssh.loginGraceTime", code: "invalid-login-grace"},
		{name: "max sessions rule", doc: "ssh:\n  maxSessions: 0\n", path: "ssh.maxSessions", code: "invalid-max-sessions"},
		{name: "idle logout rule", doc: "system:\n  idleLogout: 30s\n", path: "system.idleLogout", code: "invalid-idle-logout"},
		{name: "banner rule", doc: "system:\n  loginBanner: 'a \\\\n b'\n", path: "system.loginBanner", code: "invalid-banner"},
		{name: "group name rule", doc: "admin:\n  groups: [\"Ops!\"]\n", path: "admin.groups[0]", code: "invalid-group-name"},
		{name: "duration rule", doc: "fail2ban:\n  defaults:\n    bantime: forever\n", path: "fail2ban.defaults.bantime", code: "invalid-duration"},
		{name: "maxretry rule", doc: "fail2ban:\n  defaults:\n    maxretry: 0\n", path: "fail2ban.defaults.maxretry", code: "invalid-maxretry"},
		{name: "duplicate group", doc: "admin:\n  groups: [ops, ops]\n", path: "admin.groups[1]", code: config.CodeDuplicateItem},
		{name: "admin in own group", doc: "admin:\n  groups: [admin]\n", path: "admin.groups[0]", code: config.CodeNameConflict},
		{name: "service on ssh port", doc: "ssh:\n  port: 2222\nfirewall:\n  services:\n    - port: 2222\n", path: "firewall.services[0].port", code: config.CodePortConflict},
		{name: "sshd jail off", doc: "fail2ban:\n  jails:\n    sshd:\n      enabled: false\n", path: "fail2ban.jails.sshd.enabled", code: config.CodeMeasureRequired},
		{name: "unknown jail", doc: "fail2ban:\n  jails:\n    nginx: {}\n", path: "fail2ban.jails.nginx", code: config.CodeInvalidChoice},
		{name: "edge provider", doc: "edge:\n  providers: [aws]\n", path: "edge.providers[0]", code: config.CodeInvalidChoice},
		{name: "backup time", doc: "backup:\n  provider: ovh-vps\n  time: \"25:00\"\n", path: "backup.time", code: config.CodeInvalidTime},
		{name: "backup time without automation", doc: "backup:\n  provider: ovh-vps\n  automated: false\n  time: \"03:00\"\n", path: "backup.time", code: config.CodeIgnoredField},

		{name: "hostname missing", order: true, doc: "ssh_keys:\n  - " + q(k.ed25519) + "\n", path: "hostname", code: config.CodeRequired},
		{name: "hostname", order: true, doc: "hostname: \"-x\"\nssh_keys:\n  - " + q(k.ed25519) + "\n", path: "hostname", code: config.CodeInvalidHostname},
		{name: "admin user", order: true, doc: head + "admin_user: root\n", path: "admin_user", code: config.CodeInvalidLoginName},
		{name: "password hash", order: true, base: "admin:\n  sudo: password\n", doc: head + "admin_password_hash: hunter2\n", path: "admin_password_hash", code: config.CodeInvalidPasswordHash},
		{name: "hash ignored", order: true, doc: head + "admin_password_hash: \"$6$saltsalt$abcdefghijklmnopqrstuv\"\n", path: "admin_password_hash", code: config.CodeIgnoredField},
		{name: "ssh key", order: true, doc: "hostname: web1\nssh_keys: [\"ssh-rsa AAAA\"]\n", path: "ssh_keys[0]", code: config.CodeInvalidSSHKey},
		{name: "allow", order: true, doc: head + "allow: [80/sctp]\n", path: "allow[0]", code: config.CodeInvalidService},
		{name: "instance id", order: true, doc: head + "instance_id: \"a b\"\n", path: "instance_id", code: config.CodeInvalidInstanceID},
		{name: "order port spelling", order: true, doc: head + "ssh_port: 0x10\n", path: "ssh_port", code: config.CodeInvalidPort},
		{name: "order ssh port on service", order: true, base: "firewall:\n  services:\n    - port: 443\n", doc: head + "ssh_port: 443\n", path: "ssh_port", code: config.CodePortConflict},
		{name: "widens restriction", order: true, base: "firewall:\n  services:\n    - port: 5432\n      sources: [10.0.0.0/8]\n", doc: head + "allow: [5432/tcp]\n", path: "allow[0]", code: config.CodeWidensRestriction},
	}
	seen := map[config.Code]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.order {
				_, err = resolve(mustProfile(t, c.base), "o.yaml", c.doc)
			} else {
				doc := c.doc
				if !strings.HasPrefix(doc, "apiVersion:") {
					doc = profHead + doc
				}
				_, err = config.DecodeProfile("p.yaml", []byte(doc))
			}
			var ie *config.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want an *InputError with %s at %q, got %v", c.code, c.path, err)
			}
			wantKnownCodes(t, ie)
			for _, fe := range ie.Errs {
				seen[fe.Code] = true
			}
			i := slices.IndexFunc(ie.Errs, func(fe *config.FieldError) bool { return fe.Path == c.path })
			if i < 0 {
				t.Fatalf("no diagnostic at %q:\n%v", c.path, err)
			}
			if got := ie.Errs[i].Code; got != c.code {
				t.Errorf("%v\ncode %q, want %q", ie.Errs[i], got, c.code)
			}
		})
	}
	// Codes only other inputs reach: an empty file, flags, limits of the
	// edge documents (package edge's tests), or a document too large to
	// spell here. Each is still held to by a test of its own.
	elsewhere := map[config.Code]string{
		config.CodeEmptyDocument:  "TestDecoder",
		config.CodeTooComplex:     "TestAliasExpansionBounded",
		config.CodeOverLimit:      "edge's limit tests",
		config.CodeIPv6Unfiltered: "edge's limit tests",
		config.CodeInvalidAddress: "hardbake edge --ip",
	}
	for _, code := range config.Codes() {
		if !seen[code] && elsewhere[code] == "" {
			t.Errorf("code %q: no case above produces it", code)
		}
	}
}
