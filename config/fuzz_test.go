package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/templates"
)

// checkInputError asserts the error contract every front end relies on.
func checkInputError(t *testing.T, file string, err error) {
	t.Helper()
	var ie *config.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %T is not an *InputError: %v", err, err)
	}
	if len(ie.Errs) == 0 {
		t.Fatal("InputError without entries")
	}
	wantKnownCodes(t, ie)
	for _, fe := range ie.Errs {
		if fe.Reason == "" {
			t.Fatalf("empty reason in %+v", fe)
		}
		if fe.File != file {
			t.Fatalf("entry names file %q, want %q: %v", fe.File, file, fe)
		}
		if fe.Pos.Line < 0 || fe.Pos.Col < 0 || (fe.Pos.Line == 0) != (fe.Pos.Col == 0) {
			t.Fatalf("bad position %+v", fe.Pos)
		}
		// No input text prints raw: no control character, terminal escape
		// or line break can reach the terminal through a message.
		if strings.ContainsFunc(fe.Error(), func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("raw non-printable text in message %q", fe.Error())
		}
	}
	for i := 1; i < len(ie.Errs); i++ {
		a, b := ie.Errs[i-1].Pos, ie.Errs[i].Pos
		if a.Line > b.Line || (a.Line == b.Line && a.Col > b.Col) {
			t.Fatalf("errors out of file order: %v", err)
		}
	}
}

func fuzzSeeds(f *testing.F) {
	for _, name := range templates.ProfileNames() {
		data, _ := templates.Profile(name)
		f.Add(data)
	}
	for _, tc := range profileCases() {
		f.Add([]byte(tc.doc))
	}
}

func FuzzDecodeProfile(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := config.DecodeProfile("f.yaml", data)
		if err != nil {
			checkInputError(t, "f.yaml", err)
			if _, err2 := config.DecodeProfile("f.yaml", data); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("not deterministic:\n%v\n---\n%v", err, err2)
			}
			return
		}
		if p.APIVersion != config.APIVersion || p.Kind != config.KindProfile || p.Metadata.Name == "" {
			t.Fatalf("header %q %q %q", p.APIVersion, p.Kind, p.Metadata.Name)
		}
		if port := p.SSH.Port; !port.Random && (port.Value < 1 || port.Value > 65535 || port.Value == 22) {
			t.Fatalf("ssh port %+v", port)
		}
		if p.SSH.MaxAuthTries < 1 || p.SSH.MaxAuthTries > 10 {
			t.Fatalf("maxAuthTries %d", p.SSH.MaxAuthTries)
		}
		if _, err := config.DurationSeconds(p.SSH.LoginGraceTime); err != nil {
			t.Fatalf("loginGraceTime %q: %v", p.SSH.LoginGraceTime, err)
		}
		for _, s := range p.Firewall.Services {
			if s.Port < 1 || s.Port > 65535 || (s.Proto != "tcp" && s.Proto != "udp") {
				t.Fatalf("service %+v", s)
			}
		}
		if _, ok := p.Fail2ban.Jails["sshd"]; !ok {
			t.Fatal("no sshd jail")
		}
		if !slices.Contains([]string{"/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash"}, p.Admin.Shell) {
			t.Fatalf("admin shell %q", p.Admin.Shell)
		}
		for _, s := range p.Firewall.Services {
			if !p.SSH.Port.Random && s.Proto == "tcp" && s.Port == p.SSH.Port.Value {
				t.Fatalf("service on the SSH port %+v", s)
			}
		}
		for _, pkg := range p.Packages {
			if strings.HasSuffix(pkg, "-") || strings.HasSuffix(pkg, ".") || strings.ContainsAny(pkg, "=/:_^*?[]~ ") {
				t.Fatalf("package %q", pkg)
			}
		}
		if m := p.Updates.Mirror; m != nil && (strings.Contains(m.URL, "@") || !(strings.HasPrefix(m.URL, "http://") || strings.HasPrefix(m.URL, "https://"))) {
			t.Fatalf("mirror URL %q", m.URL)
		}
		// No accepted value can carry a line break into a rendered file.
		for _, s := range profileStrings(p) {
			if strings.ContainsAny(s, "\r\n\x00\u0085\u2028\u2029") {
				t.Fatalf("accepted value with a line break: %q", s)
			}
		}
		if p.Updates.Mirror != nil && p.Updates.Mirror.Key != "" && strings.Count(p.Updates.Mirror.Key, "-----BEGIN") != 1 {
			t.Fatalf("mirror key %q", p.Updates.Mirror.Key)
		}
	})
}

// profileStrings lists the single-line string values of a profile.
func profileStrings(p *config.Profile) []string {
	s := []string{p.Metadata.Name, p.Metadata.Description, p.Updates.Unattended.Reboot,
		p.SSH.LoginGraceTime, p.SSH.Crypto, p.Admin.Name, p.Admin.Sudo, p.Admin.Shell, p.Firewall.Backend,
		p.Fail2ban.Defaults.Bantime, p.Fail2ban.Defaults.Findtime}
	if m := p.Updates.Mirror; m != nil {
		s = append(s, m.URL)
		s = append(s, m.Suites...)
		s = append(s, m.Components...)
	}
	s = append(s, p.SSH.AllowUsers...)
	s = append(s, p.SSH.AllowGroups...)
	s = append(s, p.Admin.Groups...)
	s = append(s, p.Packages...)
	for name, j := range p.Fail2ban.Jails {
		s = append(s, name, j.Bantime, j.Findtime)
	}
	for _, svc := range p.Firewall.Services {
		s = append(s, svc.Sources...)
	}
	return s
}

func FuzzDecodeOrder(f *testing.F) {
	k := getKeys(f)
	for _, tc := range orderCases(k) {
		f.Add([]byte(tc.doc))
	}
	f.Add([]byte("{\"hostname\": \"web1\", \"ssh_keys\": [\"" + k.ed25519 + "\"], \"allow\": [\"80\"]}"))
	baseline, _ := templates.Profile("baseline")
	profiles := []*config.Profile{mustProfile(f, ""), mustProfile(f, "admin:\n  sudo: password\n")}
	if p, err := config.DecodeProfile("baseline.yaml", baseline); err == nil {
		profiles = append(profiles, p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, src, err := config.DecodeOrder("o.yaml", data)
		if err != nil {
			checkInputError(t, "o.yaml", err)
			return
		}
		for _, p := range profiles {
			m, err := o.Resolve(p, src)
			if err != nil {
				checkInputError(t, "o.yaml", err)
				continue
			}
			if m.Hostname == "" || len(m.Hostname) > 253 || strings.ContainsAny(m.Hostname, " \r\n\x00") {
				t.Fatalf("hostname %q", m.Hostname)
			}
			if len(m.Keys) == 0 || m.InstanceID == "" || m.AdminUser == "" || m.AdminUser == "root" {
				t.Fatalf("machine %+v", m)
			}
			for _, key := range m.Keys {
				if strings.ContainsAny(key.Line, "\r\n\x00\u0085\u2028\u2029") || key.Line != strings.TrimSpace(key.Line) {
					t.Fatalf("key line %q", key.Line)
				}
				if _, reason := config.ParseAuthorizedKey(key.Line); reason != "" {
					t.Fatalf("accepted key does not re-parse: %s", reason)
				}
			}
			if v := m.SSHPort.Value; v != 0 && (v < 1 || v > 65535 || v == 22 || m.SSHPort.Random) {
				t.Fatalf("ssh port %+v", m.SSHPort)
			}
			for _, a := range m.Allow {
				if a.Port < 1 || a.Port > 65535 || (a.Proto != "tcp" && a.Proto != "udp") {
					t.Fatalf("allow %+v", a)
				}
			}
			if p.Admin.Sudo == "password" && m.AdminPasswordHash == "" {
				t.Fatal("sudo password without a hash")
			}
		}
	})
}
