package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// knownJails are the jails a profile may configure. sshd is always on.
var knownJails = map[string]bool{"sshd": true, "recidive": true}

// DecodeProfile decodes, defaults and validates a profile document.
// file names the source in error messages.
func DecodeProfile(file string, data []byte) (*Profile, error) {
	var p Profile
	src, decodeErr := decodeStrict(file, data, &p)
	if decodeErr != nil && len(src.pos) == 0 {
		return nil, decodeErr // not even a document: nothing to validate
	}
	p.setDefaults(src)
	// Validate even after decoding errors so one run reports every problem,
	// but leave out what follows from a value that did not decode.
	if err := mergeErrors(decodeErr, p.validate(src)); err != nil {
		return nil, err
	}
	return &p, nil
}

// mergeErrors appends the validation errors that are not about a path (or
// below a path) that already failed to decode.
func mergeErrors(decodeErr, validateErr error) error {
	de, _ := decodeErr.(*InputError)
	ve, _ := validateErr.(*InputError)
	if de == nil {
		return validateErr
	}
	if ve == nil {
		return decodeErr
	}
	merged := &errList{errs: append([]*FieldError(nil), de.Errs...)}
	for _, v := range ve.Errs {
		covered := false
		for _, d := range de.Errs {
			if d.Path == "" || v.Path == d.Path || strings.HasPrefix(v.Path, d.Path+".") || strings.HasPrefix(v.Path, d.Path+"[") {
				covered = true
				break
			}
		}
		if !covered {
			merged.errs = append(merged.errs, v)
		}
	}
	return merged.err()
}

func ptr[T any](v T) *T { return &v }

// setDefaults fills every absent value, so later stages never guess. An
// explicit 0 is not absent: it is left for validation to refuse.
func (p *Profile) setDefaults(src *Source) {
	u := &p.Updates
	if u.UpgradeOnFirstBoot == nil {
		u.UpgradeOnFirstBoot = ptr(true)
	}
	if u.Unattended == nil {
		u.Unattended = &Unattended{}
	}
	if u.Unattended.Enabled == nil {
		u.Unattended.Enabled = ptr(true)
	}
	if u.Unattended.Reboot == "" {
		u.Unattended.Reboot = "none"
	}
	if m := u.Mirror; m != nil {
		if len(m.Suites) == 0 {
			m.Suites = []string{"$RELEASE", "$RELEASE-updates"}
		}
		if len(m.Components) == 0 {
			m.Components = []string{"main"}
		}
	}
	s := &p.SSH
	if !s.Port.Random && s.Port.Value == 0 {
		s.Port.Random = true
	}
	if s.MaxAuthTries == 0 && !src.given("ssh.maxAuthTries") {
		s.MaxAuthTries = 3
	}
	if s.LoginGraceTime == "" {
		s.LoginGraceTime = "30s"
	}
	if s.Crypto == "" {
		s.Crypto = "compatible"
	}
	a := &p.Admin
	if a.Name == "" {
		a.Name = "admin"
	}
	if a.Sudo == "" {
		a.Sudo = "nopasswd"
	}
	if a.Shell == "" {
		a.Shell = "/bin/bash"
	}
	f := &p.Firewall
	if f.Enabled == nil {
		f.Enabled = ptr(true)
	}
	if f.Backend == "" {
		f.Backend = "auto"
	}
	for i := range f.Services {
		if f.Services[i].Proto == "" {
			f.Services[i].Proto = "tcp"
		}
	}
	b := &p.Fail2ban
	if b.Enabled == nil {
		b.Enabled = ptr(true)
	}
	if b.Defaults.Bantime == "" {
		b.Defaults.Bantime = "10m"
	}
	if b.Defaults.Findtime == "" {
		b.Defaults.Findtime = "10m"
	}
	if b.Defaults.Maxretry == 0 && !src.given("fail2ban.defaults.maxretry") {
		b.Defaults.Maxretry = 5
	}
	if b.Jails == nil {
		b.Jails = map[string]Jail{}
	}
	if _, ok := b.Jails["sshd"]; !ok {
		b.Jails["sshd"] = Jail{}
	}
	for name, j := range b.Jails {
		if j.Enabled == nil {
			j.Enabled = ptr(true)
		}
		b.Jails[name] = j
	}
}

func (p *Profile) validate(src *Source) error {
	e := &errList{src: src}
	if p.APIVersion != APIVersion {
		e.add("apiVersion", "must be %q, not %q", APIVersion, p.APIVersion)
	}
	if p.Kind != KindProfile {
		e.add("kind", "must be %q, not %q", KindProfile, p.Kind)
	}
	if !profileRE.MatchString(p.Metadata.Name) {
		e.add("metadata.name", "%q must be 1–63 lower-case letters, digits and inner hyphens", p.Metadata.Name)
	}
	if utf8.RuneCountInString(p.Metadata.Description) > 200 || containsControl(p.Metadata.Description) {
		e.add("metadata.description", "must be one line of at most 200 characters")
	}

	u := p.Updates
	if r := u.Unattended.Reboot; r != "none" && !rebootRE.MatchString(r) {
		e.add("updates.unattended.reboot", "%q must be a time HH:MM (00:00–23:59) or none", r)
	}
	if m := u.Mirror; m != nil {
		if reason := checkURL(m.URL); reason != "" {
			e.add("updates.mirror.url", "%s", reason)
		}
		for i, s := range m.Suites {
			if !suiteRE.MatchString(s) {
				e.add(fmt.Sprintf("updates.mirror.suites[%d]", i), "%q is not a suite name (e.g. $RELEASE, $RELEASE-updates, bookworm)", s)
			}
		}
		for i, c := range m.Components {
			if !componentRE.MatchString(c) {
				e.add(fmt.Sprintf("updates.mirror.components[%d]", i), "%q is not a component name (e.g. main)", c)
			}
		}
		if m.Key != "" {
			if reason := checkArmoredKey(m.Key); reason != "" {
				e.add("updates.mirror.key", "%s", reason)
			}
		}
	}

	s := p.SSH
	if !s.Port.Random {
		if reason := checkSSHPort(s.Port.Value); reason != "" {
			e.add("ssh.port", "%s", reason)
		}
	}
	if s.MaxAuthTries < 1 || s.MaxAuthTries > 10 {
		e.add("ssh.maxAuthTries", "must be 1–10, not %d", s.MaxAuthTries)
	}
	if reason := checkDurationRange(s.LoginGraceTime, time.Second, 10*time.Minute); reason != "" {
		e.add("ssh.loginGraceTime", "%s", reason)
	}
	switch s.Crypto {
	case "compatible", "modern", "openssh":
	default:
		e.add("ssh.crypto", "must be compatible, modern or openssh, not %q", s.Crypto)
	}
	for i, name := range s.AllowUsers {
		if reason := checkUserName(name); reason != "" {
			e.add(fmt.Sprintf("ssh.allowUsers[%d]", i), "%s", reason)
		}
	}
	for i, name := range s.AllowGroups {
		if reason := checkGroupName(name); reason != "" {
			e.add(fmt.Sprintf("ssh.allowGroups[%d]", i), "%s", reason)
		}
	}

	a := p.Admin
	if reason := checkUserName(a.Name); reason != "" {
		e.add("admin.name", "%s", reason)
	}
	if a.Sudo != "nopasswd" && a.Sudo != "password" {
		e.add("admin.sudo", "must be nopasswd or password, not %q", a.Sudo)
	}
	if !shellRE.MatchString(a.Shell) {
		e.add("admin.shell", "%q must be an absolute path", a.Shell)
	}
	for i, g := range a.Groups {
		if reason := checkGroupName(g); reason != "" {
			e.add(fmt.Sprintf("admin.groups[%d]", i), "%s", reason)
		}
	}

	f := p.Firewall
	switch f.Backend {
	case "auto", "nftables", "iptables":
	default:
		e.add("firewall.backend", "must be auto, nftables or iptables, not %q", f.Backend)
	}
	seen := map[string]int{}
	for i, svc := range f.Services {
		path := fmt.Sprintf("firewall.services[%d]", i)
		if reason := checkPort(svc.Port); reason != "" {
			e.add(path+".port", "%s", reason)
		}
		if svc.Proto != "tcp" && svc.Proto != "udp" {
			e.add(path+".proto", "must be tcp or udp, not %q", svc.Proto)
		}
		key := fmt.Sprintf("%d/%s", svc.Port, svc.Proto)
		if j, dup := seen[key]; dup {
			e.add(path, "%d/%s is already declared in firewall.services[%d]", svc.Port, svc.Proto, j)
		}
		seen[key] = i
		for k, c := range svc.Sources {
			if _, reason := checkCIDR(c); reason != "" {
				e.add(fmt.Sprintf("%s.sources[%d]", path, k), "%s", reason)
			}
		}
	}

	b := p.Fail2ban
	checkJailSettings(e, "fail2ban.defaults", b.Defaults.Bantime, b.Defaults.Findtime, b.Defaults.Maxretry, true)
	names := make([]string, 0, len(b.Jails))
	for name := range b.Jails {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		j := b.Jails[name]
		path := "fail2ban.jails." + name
		if !knownJails[name] {
			e.add(path, "unknown jail %q (known: recidive, sshd)", name)
			continue
		}
		if name == "sshd" && !Bool(j.Enabled, true) && Bool(b.Enabled, true) {
			e.add(path+".enabled", "the sshd jail cannot be disabled while fail2ban is enabled")
		}
		checkJailSettings(e, path, j.Bantime, j.Findtime, j.Maxretry, false)
	}

	for i, pkg := range p.Packages {
		if !packageRE.MatchString(pkg) {
			e.add(fmt.Sprintf("packages[%d]", i), "%q is not a Debian package name", pkg)
		}
	}
	return e.err()
}

func checkJailSettings(e *errList, path, bantime, findtime string, maxretry int, required bool) {
	for _, kv := range []struct{ key, val string }{{"bantime", bantime}, {"findtime", findtime}} {
		if kv.val == "" && !required {
			continue
		}
		if reason := checkDurationRange(kv.val, time.Second, 365*24*time.Hour); reason != "" {
			e.add(path+"."+kv.key, "%s", reason)
		}
	}
	if (required || maxretry != 0 || e.src.given(path+".maxretry")) && (maxretry < 1 || maxretry > 100) {
		e.add(path+".maxretry", "must be 1–100, not %d", maxretry)
	}
}

// checkSSHPort is checkPort plus the one port hardening moves SSH away from.
func checkSSHPort(p int) string {
	if p == 22 {
		return "must be 1–65535 or \"random\", and not 22 (the point is to move SSH off port 22)"
	}
	if p < 1 || p > 65535 {
		return fmt.Sprintf("must be 1–65535 or \"random\", not %d", p)
	}
	return ""
}

// containsControl reports C0 and C1 control characters (NEL, U+0085,
// included) and the Unicode line and paragraph separators, all of which
// YAML 1.1 readers such as cloud-init's may treat as line breaks.
func containsControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}
