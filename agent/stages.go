package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// early runs everything that can be done before sshd starts and before
// packages are installed. The firewall goes first so the new SSH port is
// open before sshd moves to it.
func (r *run) early() {
	p := r.plan
	if p.Firewall != nil {
		r.step(StageEarly, "firewall", func() (string, error) { return r.applyFirewall(false) })
	}
	if !r.sshOK(r.step(StageEarly, "ssh", r.applySSH)) {
		r.keepSSHReachable()
	}
	// root's password is locked in the late stage, once the admin (whom
	// cloud-init creates after this stage) has proven it can log in.
	if p.Sysctl != nil {
		r.step(StageEarly, "sysctl", r.applySysctl)
	}
	if p.Fail2ban != nil {
		r.step(StageEarly, "fail2ban-config", func() (string, error) { return r.installAll(p.Fail2ban.JailLocal) })
	}
	if p.Updates != nil && len(p.Updates.Files) > 0 {
		r.step(StageEarly, "updates-config", func() (string, error) { return r.installAll(p.Updates.Files...) })
	}
	if p.System != nil {
		// Before cloud-init creates the admin (login.defs' UMASK shapes its
		// home) and before the packages whose services read these files.
		r.step(StageEarly, "system-config", func() (string, error) {
			files, err := r.systemFiles()
			if err != nil {
				return plan.StatusFailed, err
			}
			return r.installAll(files...)
		})
	}
}

// late finishes and proves what needed sshd running or packages installed.
func (r *run) late() {
	p := r.plan
	if p.Firewall != nil {
		r.step(StageLate, "firewall", func() (string, error) { return r.applyFirewall(true) })
	}
	if !r.sshOK(r.step(StageLate, "ssh-verify", r.verifySSH)) {
		r.keepSSHReachable()
	}
	// Never lock out: root and password login are taken away only from a
	// machine whose admin has proven it can log in and sudo.
	adminOK := p.Accounts.Admin != "" && r.sshOK(r.step(StageLate, "admin-user", r.checkAdmin))
	if p.Accounts.LockRootPassword {
		if adminOK {
			r.step(StageLate, "root-password", r.lockRoot)
		} else {
			r.step(StageLate, "root-password", func() (string, error) {
				return plan.StatusSkipped, errors.New("not locked: no admin proved it can log in, root stays as cloud-init left it")
			})
		}
	}
	if !adminOK && p.Accounts.Admin != "" {
		r.step(StageLate, "ssh-access", r.restoreSSHAccess)
	}
	if p.Fail2ban != nil {
		r.step(StageLate, "fail2ban", func() (string, error) { return r.fail2ban(true) })
	}
	if p.Updates != nil && p.Updates.Unattended {
		r.step(StageLate, "unattended-upgrades", r.checkUpdates)
	}
	if p.System != nil {
		r.step(StageLate, "system", r.checkSystem)
	}
}

func (r *run) sshOK(status string) bool {
	return status == plan.StatusApplied || status == plan.StatusUnchanged
}

// keepSSHReachable runs when SSH did not end up on the planned port: the
// firewall, loaded first so the new port is open before sshd moves, must
// not then block the port sshd still listens on. It follows SSH back.
func (r *run) keepSSHReachable() {
	port := 22
	if eff, err := r.effectiveSSH(); err == nil {
		port = firstPort(eff)
	}
	r.firewallFollowSSH(port)
}

// check re-proves everything without changing anything (drift check).
func (r *run) check() {
	p := r.plan
	r.step(StageCheck, "files", r.checkFiles)
	if p.Firewall != nil {
		r.step(StageCheck, "firewall", r.checkFirewall)
	}
	r.step(StageCheck, "ssh", r.checkSSH)
	if p.Accounts.LockRootPassword {
		r.step(StageCheck, "root-password", r.checkRootLocked)
	}
	if p.Accounts.Admin != "" {
		r.step(StageCheck, "admin-user", r.checkAdmin)
	}
	if p.Sysctl != nil {
		r.step(StageCheck, "sysctl", r.checkSysctl)
	}
	if p.Fail2ban != nil {
		r.step(StageCheck, "fail2ban", func() (string, error) { return r.fail2ban(false) })
	}
	if p.Updates != nil && p.Updates.Unattended {
		r.step(StageCheck, "unattended-upgrades", r.checkUpdates)
	}
	if p.System != nil {
		r.step(StageCheck, "system", r.checkSystem)
	}
}

// ok is the status of a verification that passed: "applied" the first
// time a plan is proven, "unchanged" on re-runs and in check.
func (r *run) ok() string {
	if r.stage == StageCheck || r.st.Late.Digest == r.digest {
		return plan.StatusUnchanged
	}
	return plan.StatusApplied
}

// installAll writes files that take effect later (their service is not
// installed or reads them on start).
func (r *run) installAll(files ...plan.File) (string, error) {
	changed := false
	for _, f := range files {
		c, err := r.Root.Install(f)
		if err != nil {
			return plan.StatusFailed, err
		}
		changed = changed || c
	}
	if changed {
		return plan.StatusApplied, nil
	}
	return plan.StatusUnchanged, nil
}

// planFiles lists every file of the plan that applies on this machine.
func (r *run) planFiles() []plan.File {
	p := r.plan
	files := []plan.File{p.SSH.DropIn}
	if r.rep.SSH.Activation == actSocket {
		files = append(files, p.SSH.SocketDropIn)
	}
	if fw := p.Firewall; fw != nil {
		switch r.rep.Firewall.Backend {
		case backendNft:
			files = append(files, fw.Nftables)
		case backendIPT:
			files = append(files, fw.IPTablesV4, fw.IPTablesV6, fw.IPTablesUnit)
		}
	}
	if p.Sysctl != nil {
		files = append(files, p.Sysctl.File)
	}
	if p.Fail2ban != nil {
		files = append(files, p.Fail2ban.JailLocal)
	}
	if p.Updates != nil {
		files = append(files, p.Updates.Files...)
	}
	return files
}

func (r *run) checkFiles() (string, error) {
	r.rep.SSH.Activation = r.activation()
	r.rep.Firewall.Backend = r.firewallBackend()
	var drift []string
	for _, f := range r.planFiles() {
		if !r.Root.Same(f) {
			drift = append(drift, f.Path)
		}
	}
	if drift != nil {
		return plan.StatusFailed, fmt.Errorf("differs from the plan: %s", strings.Join(drift, ", "))
	}
	return plan.StatusUnchanged, nil
}

// readBack fills the report's effective values, whatever the steps did.
func (r *run) readBack() {
	rep := &r.rep
	if rep.SSH.Activation == "" {
		rep.SSH.Activation = r.activation()
	}
	rep.SSH.Port = r.plan.SSH.Port
	if eff, err := r.effectiveSSH(); err == nil {
		rep.SSH.Effective = map[string]string{}
		for _, k := range []string{"port", "permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "maxauthtries"} {
			rep.SSH.Effective[k] = strings.Join(eff[k], " ")
		}
	}
	if r.plan.Firewall != nil && rep.Firewall.InputPolicy == "" && rep.Firewall.Backend != "" {
		if v, err := r.readFirewall(rep.Firewall.Backend); err == nil {
			r.setFirewallReport(v)
		}
	}
	rep.HostKeys = r.hostKeys()
}

// errOr joins a cause and what happened next into one message.
func errOr(cause error, next string) error {
	return errors.New(cause.Error() + "; " + next)
}
