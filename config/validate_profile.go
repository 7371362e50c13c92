package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode"
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

// setDefaults fills every absent (or null) value, so later stages never
// guess. A given value is never replaced, not even "" or 0: it is left for
// validation to refuse, so an empty value never silently means "default".
func (p *Profile) setDefaults(src *Source) {
	str := func(v *string, path, def string) {
		if *v == "" && !src.given(path) {
			*v = def
		}
	}
	num := func(v *int, path string, def int) {
		if *v == 0 && !src.given(path) {
			*v = def
		}
	}
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
	str(&u.Unattended.Reboot, "updates.unattended.reboot", "none")
	if m := u.Mirror; m != nil {
		if len(m.Suites) == 0 && !src.given("updates.mirror.suites") {
			m.Suites = []string{"$RELEASE", "$RELEASE-updates"}
		}
		if len(m.Components) == 0 && !src.given("updates.mirror.components") {
			m.Components = []string{"main"}
		}
	}
	s := &p.SSH
	if s.Port.IsZero() {
		s.Port.Random = true
	}
	num(&s.MaxAuthTries, "ssh.maxAuthTries", 3)
	str(&s.LoginGraceTime, "ssh.loginGraceTime", "30s")
	str(&s.Crypto, "ssh.crypto", "compatible")
	num(&s.MaxSessions, "ssh.maxSessions", 10)
	if s.Forwarding == nil {
		s.Forwarding = ptr(true)
	}
	sy := &p.System
	if sy.CoreDumps == nil {
		sy.CoreDumps = ptr(true)
	}
	str(&sy.Umask, "system.umask", "022")
	a := &p.Admin
	str(&a.Name, "admin.name", "admin")
	str(&a.Sudo, "admin.sudo", "nopasswd")
	str(&a.Shell, "admin.shell", "/bin/bash")
	f := &p.Firewall
	if f.Enabled == nil {
		f.Enabled = ptr(true)
	}
	str(&f.Backend, "firewall.backend", "auto")
	for i := range f.Services {
		str(&f.Services[i].Proto, fmt.Sprintf("firewall.services[%d].proto", i), "tcp")
	}
	b := &p.Fail2ban
	if b.Enabled == nil {
		b.Enabled = ptr(true)
	}
	str(&b.Defaults.Bantime, "fail2ban.defaults.bantime", "10m")
	str(&b.Defaults.Findtime, "fail2ban.defaults.findtime", "10m")
	num(&b.Defaults.Maxretry, "fail2ban.defaults.maxretry", 5)
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

// validate checks every value against its rule (applyRules, the rules the
// JSON Schema is generated from), then the rules that span fields.
func (p *Profile) validate(src *Source) error {
	e := &errList{src: src}
	applyRules(e, "", reflect.ValueOf(p).Elem())
	// The edge sections validate themselves (package edge owns what each
	// provider accepts); their issues name their key paths like ours.
	for _, is := range append(p.Edge.Validate("edge"), p.Backup.Validate("backup")...) {
		e.add(Code(is.Code), is.Origin.Path, "%s", is.Reason)
	}

	s := p.SSH
	if !s.Port.Random {
		if reason := checkSSHPort(s.Port.Value); reason != "" {
			e.add(CodeInvalidPort, "ssh.port", "%s", reason)
		}
	}

	a := p.Admin
	seenGroup := map[string]int{}
	for i, g := range a.Groups {
		path := fmt.Sprintf("admin.groups[%d]", i)
		if j, dup := seenGroup[g]; dup {
			e.add(CodeDuplicateItem, path, "%q is already listed in admin.groups[%d]", g, j)
		}
		seenGroup[g] = i
		if g == a.Name {
			e.add(CodeNameConflict, path, "%q is the admin's own name (admin.name): cloud-init would create the group first and useradd would then fail", g)
		}
	}

	f := p.Firewall
	seen := map[string]int{}
	for i, svc := range f.Services {
		path := fmt.Sprintf("firewall.services[%d]", i)
		key := fmt.Sprintf("%d/%s", svc.Port, svc.Proto)
		if j, dup := seen[key]; dup {
			e.add(CodeDuplicateItem, path, "%d/%s is already declared in firewall.services[%d]", svc.Port, svc.Proto, j)
		}
		seen[key] = i
		if !s.Port.Random && svc.Port == s.Port.Value && svc.Proto == "tcp" {
			e.add(CodePortConflict, path+".port", "%d/tcp is the SSH port (ssh.port): SSH is always allowed; declare the service on another port or move ssh.port", svc.Port)
		}
	}

	b := p.Fail2ban
	names := make([]string, 0, len(b.Jails))
	for name := range b.Jails {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		j := b.Jails[name]
		path := join("fail2ban.jails", name)
		if !knownJails[name] {
			e.add(CodeInvalidChoice, path, "unknown jail %q (known: recidive, sshd)", name)
			continue
		}
		if name == "sshd" && !Bool(j.Enabled, true) && Bool(b.Enabled, true) {
			e.add(CodeMeasureRequired, path+".enabled", "the sshd jail cannot be disabled while fail2ban is enabled (fail2ban.enabled)")
		}
	}
	return e.err()
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
