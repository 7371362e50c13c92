package render

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/templates"
)

// Paths of the files the plan carries on the target machine.
const (
	sshdDropInPath   = "/etc/ssh/sshd_config.d/10-hardbake.conf"
	socketDropInPath = "/etc/systemd/system/ssh.socket.d/10-hardbake.conf"
	nftablesPath     = "/etc/nftables.conf"
	iptablesV4Path   = "/etc/iptables/rules.v4"
	iptablesV6Path   = "/etc/iptables/rules.v6"
	iptablesUnitPath = "/etc/systemd/system/hardbake-firewall.service"
	jailLocalPath    = "/etc/fail2ban/jail.local"
	autoUpgradesPath = "/etc/apt/apt.conf.d/20auto-upgrades"
	unattendedPath   = "/etc/apt/apt.conf.d/52hardbake-unattended-upgrades"
	sysctlPath       = "/etc/sysctl.d/90-hardbake.conf"
)

// SSHPort is the port the machine's SSH moves to: the order's, else the
// profile's fixed port, else one chosen in 49152–65535 from the instance-id
// (so re-rendering an order never moves it). A random choice never lands on
// a TCP port the profile or the order declares: on a collision it steps to
// the next free port in the range, the same way every time.
func SSHPort(p *config.Profile, m *config.Machine) int {
	switch {
	case m.SSHPort.Value != 0:
		return m.SSHPort.Value
	case !m.SSHPort.Random && !p.SSH.Port.Random:
		return p.SSH.Port.Value
	}
	declared := map[int]bool{}
	for _, svc := range p.Firewall.Services {
		if svc.Proto == "tcp" {
			declared[svc.Port] = true
		}
	}
	for _, svc := range m.Allow {
		if svc.Proto == "tcp" {
			declared[svc.Port] = true
		}
	}
	const first, span = 49152, 16384
	sum := sha256.Sum256([]byte("hardbake ssh port\x00" + m.InstanceID))
	start := int(binary.BigEndian.Uint16(sum[:2]) % span)
	for i := range span {
		if port := first + (start+i)%span; !declared[port] {
			return port
		}
	}
	// Unreachable: a profile and an order cannot declare all 16,384 ports
	// of the range (the plan would not fit in one argument); fall back to
	// the hashed port rather than fail.
	return first + start
}

// buildPlan turns a validated profile and machine into the agent's plan.
func buildPlan(p *config.Profile, m *config.Machine) (*plan.Plan, error) {
	port := SSHPort(p, m)
	name := p.Metadata.Name
	pl := &plan.Plan{
		Version:    plan.Version,
		Profile:    name,
		InstanceID: m.InstanceID,
		Accounts:   plan.Accounts{Admin: m.AdminUser, LockRootPassword: true, AdminSudo: plan.SudoNopasswd},
	}
	if p.Admin.Sudo == "password" { // the agent proves the rule it can: see plan.Accounts
		pl.Accounts.AdminSudo = plan.SudoPassword
	}
	r := &renderer{}

	// config validated these; a profile that bypassed validation gets an
	// error here, never a panic or a silently wrong value.
	grace, err := config.DurationSeconds(p.SSH.LoginGraceTime)
	if err != nil {
		return nil, fmt.Errorf("ssh.loginGraceTime: %w", err)
	}
	allowUsers := appendUnique([]string{m.AdminUser}, p.SSH.AllowUsers...)
	var allowGroups []string
	if len(p.SSH.AllowGroups) > 0 {
		// sshd requires a match in both lists when both are set: keep the
		// admin's own group in AllowGroups so the admin is never locked out.
		allowGroups = appendUnique([]string{m.AdminUser}, p.SSH.AllowGroups...)
	}
	pl.SSH = plan.SSH{
		Port: port,
		DropIn: r.file(sshdDropInPath, 0o644, "sshd.conf.tmpl", sshdData{
			Profile: name, Port: port, MaxAuthTries: p.SSH.MaxAuthTries, LoginGraceTime: grace,
			AllowUsers: allowUsers, AllowGroups: allowGroups, Crypto: p.SSH.Crypto,
			MaxSessions: p.SSH.MaxSessions, Forwarding: config.Bool(p.SSH.Forwarding, true),
		}),
		SocketDropIn: r.file(socketDropInPath, 0o644, "ssh-socket.conf.tmpl", portData{Profile: name, Port: port}),
		Expect: map[string]string{
			"port":                         strconv.Itoa(port),
			"permitrootlogin":              "no",
			"passwordauthentication":       "no",
			"kbdinteractiveauthentication": "no",
			"pubkeyauthentication":         "yes",
			"permitemptypasswords":         "no",
			"authenticationmethods":        "publickey",
			"maxauthtries":                 strconv.Itoa(p.SSH.MaxAuthTries),
			"logingracetime":               strconv.Itoa(grace),
			"maxsessions":                  strconv.Itoa(p.SSH.MaxSessions),
			"loglevel":                     "VERBOSE",
			"compression":                  "no",
			"tcpkeepalive":                 "no",
			"clientaliveinterval":          "300",
			"clientalivecountmax":          "2",
		},
	}
	if !config.Bool(p.SSH.Forwarding, true) {
		for _, k := range []string{"allowtcpforwarding", "allowagentforwarding", "allowstreamlocalforwarding", "permittunnel"} {
			pl.SSH.Expect[k] = "no"
		}
	}

	if config.Bool(p.Firewall.Enabled, true) {
		rules, err := firewallRules(p, m)
		if err != nil {
			return nil, err
		}
		fw := firewallData{Profile: name, SSHPort: port, Rules: rules}
		allow := []plan.Port{{Port: port, Proto: "tcp"}}
		for _, rule := range fw.Rules {
			if rule.Any { // source-restricted ports cannot be probed from anywhere
				allow = append(allow, plan.Port{Port: rule.Port, Proto: rule.Proto})
			}
		}
		pl.Firewall = &plan.Firewall{
			Backend:      p.Firewall.Backend,
			Nftables:     r.file(nftablesPath, 0o755, "nftables.conf.tmpl", fw),
			IPTablesV4:   r.file(iptablesV4Path, 0o644, "iptables-v4.rules.tmpl", fw),
			IPTablesV6:   r.file(iptablesV6Path, 0o644, "iptables-v6.rules.tmpl", fw),
			IPTablesUnit: r.file(iptablesUnitPath, 0o644, "hardbake-firewall.service.tmpl", profileOnly{name}),
			Allow:        dedupePorts(allow),
		}
	}

	if config.Bool(p.Fail2ban.Enabled, true) {
		jd := jailData{
			Profile: name, SSHPort: port,
			Banaction: "nftables-multiport", BanactionAllports: "nftables-allports",
			Defaults: jailSettings{p.Fail2ban.Defaults.Bantime, p.Fail2ban.Defaults.Findtime, p.Fail2ban.Defaults.Maxretry},
		}
		if p.Firewall.Backend == "iptables" {
			jd.Banaction, jd.BanactionAllports = "iptables-multiport", "iptables-allports"
		}
		sshd := p.Fail2ban.Jails["sshd"]
		jd.SSHD = jailSettings{sshd.Bantime, sshd.Findtime, sshd.Maxretry}
		jails := map[string]string{"sshd": strconv.Itoa(port)}
		if rec, ok := p.Fail2ban.Jails["recidive"]; ok && config.Bool(rec.Enabled, true) {
			jd.Recidive = &jailSettings{rec.Bantime, rec.Findtime, rec.Maxretry}
			jails["recidive"] = "" // bans on all ports; nothing to compare
		}
		pl.Fail2ban = &plan.Fail2ban{
			JailLocal: r.file(jailLocalPath, 0o644, "jail.local.tmpl", jd),
			Jails:     jails,
		}
	}

	if un := p.Updates.Unattended; config.Bool(un.Enabled, true) {
		ud := unattendedData{Profile: name}
		if un.Reboot != "none" {
			ud.RebootTime = un.Reboot
		}
		pl.Updates = &plan.Updates{
			Unattended: true,
			Files: []plan.File{
				r.file(autoUpgradesPath, 0o644, "20auto-upgrades.tmpl", profileOnly{name}),
				r.file(unattendedPath, 0o644, "52hardbake-unattended-upgrades.tmpl", ud),
			},
		}
	}

	if p.Sysctl.Hardening {
		expect := make(map[string]string, len(sysctlHardening))
		for _, s := range sysctlHardening {
			expect[s.Key] = s.Value
		}
		pl.Sysctl = &plan.Sysctl{
			File:   r.file(sysctlPath, 0o644, "sysctl.conf.tmpl", sysctlData{Profile: name, Settings: sysctlHardening}),
			Expect: expect,
		}
	}
	sys, err := systemMeasures(p, r)
	if err != nil {
		return nil, err
	}
	pl.System = sys
	if r.err != nil {
		return nil, r.err
	}
	return pl, nil
}

// renderer renders template files and keeps the first error, so buildPlan
// reads as the list of files it is.
type renderer struct{ err error }

func (r *renderer) file(path string, mode uint32, tmpl string, data any) plan.File {
	content, err := templates.Render(tmpl, data)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: %w", path, err)
	}
	return plan.File{Path: path, Content: content, Mode: mode, Owner: "root:root"}
}

// firewallRules merges the profile's services and the order's extra ports
// into one rule per port/protocol, sorted, sources split by family.
func firewallRules(p *config.Profile, m *config.Machine) ([]firewallRule, error) {
	byKey := map[string]*firewallRule{}
	var keys []string
	get := func(port int, proto string) *firewallRule {
		key := fmt.Sprintf("%05d/%s", port, proto)
		if r, ok := byKey[key]; ok {
			return r
		}
		r := &firewallRule{Proto: proto, Port: port}
		byKey[key] = r
		keys = append(keys, key)
		return r
	}
	for i, svc := range p.Firewall.Services {
		r := get(svc.Port, svc.Proto)
		if len(svc.Sources) == 0 {
			r.Any = true
		}
		for j, src := range svc.Sources {
			prefix, err := netip.ParsePrefix(src)
			if err != nil {
				return nil, fmt.Errorf("firewall.services[%d].sources[%d]: %w", i, j, err)
			}
			if prefix.Addr().Is4() {
				r.V4Sources = appendUnique(r.V4Sources, prefix.String())
			} else {
				r.V6Sources = appendUnique(r.V6Sources, prefix.String())
			}
		}
	}
	for _, svc := range m.Allow {
		get(svc.Port, svc.Proto).Any = true
	}
	sort.Strings(keys)
	rules := make([]firewallRule, 0, len(keys))
	for _, k := range keys {
		r := byKey[k]
		if r.Any { // open to all: source lists would only repeat it
			r.V4Sources, r.V6Sources = nil, nil
		}
		rules = append(rules, *r)
	}
	return rules, nil
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, have := range list {
			if have == it {
				found = true
				break
			}
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

func dedupePorts(ports []plan.Port) []plan.Port {
	seen := map[plan.Port]bool{}
	out := ports[:0]
	for _, p := range ports {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
