package agent

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"hardbake.dev/hardbake/plan"
)

const (
	backendNft = "nftables"
	backendIPT = "iptables"
	// backendNetlink: the agent itself loaded the ruleset over netlink,
	// the image having neither tool (until the package arrives).
	backendNetlink = "netlink"
)

// ruleset is a loaded firewall as read back from the kernel.
type ruleset struct {
	PolicyV4, PolicyV6 string
	V4, V6             []plan.Port
}

func allows(ports []plan.Port, port int, proto string) bool {
	return slices.Contains(ports, plan.Port{Port: port, Proto: proto})
}

// firewallBackend picks the tool: nft when present, else iptables, else ""
// (the package is not installed yet).
func (r *run) firewallBackend() string {
	want := r.plan.Firewall.Backend
	if (want == "" || want == "auto" || want == backendNft) && has(r.Runner, "nft") {
		return backendNft
	}
	if (want == "" || want == "auto" || want == backendIPT) && has(r.Runner, "iptables-restore") && has(r.Runner, "ip6tables-restore") {
		return backendIPT
	}
	return ""
}

// applyFirewall validates, loads, verifies and persists the ruleset. final
// is true in the late stage, where a missing tool is a failure, not a wait.
func (r *run) applyFirewall(final bool) (string, error) {
	fw := r.plan.Firewall
	if port := r.plan.SSH.Port; !allows(fw.Allow, port, "tcp") {
		return plan.StatusFailed, fmt.Errorf("refusing firewall: allow list lacks the SSH port %d/tcp (would lock the admin out)", port)
	}
	backend := r.firewallBackend()
	r.rep.Firewall.Backend = backend
	if backend == "" {
		err := fmt.Errorf("neither nft nor iptables-restore is installed (backend %q)", fw.Backend)
		if final {
			return plan.StatusFailed, err
		}
		return r.applyNetlink(err)
	}
	files, unit := r.firewallFiles(backend)
	if allSame(r.Root, files) {
		if err := r.verifyFirewall(backend); err == nil {
			return plan.StatusUnchanged, r.enable(unit)
		}
		// Files in place but not loaded (e.g. a failed earlier run): load them.
	} else if err := r.testRuleset(backend); err != nil {
		return plan.StatusFailed, err
	}
	var changed []string
	for _, f := range files {
		c, err := r.Root.Install(f)
		if err != nil {
			return r.rollbackFirewall(backend, changed, err)
		}
		if c {
			changed = append(changed, f.Path)
		}
	}
	if err := r.loadRuleset(backend); err != nil {
		return r.rollbackFirewall(backend, changed, err)
	}
	if err := r.verifyFirewall(backend); err != nil {
		return r.rollbackFirewall(backend, changed, err)
	}
	r.firewallApplied = true
	if err := r.enable(unit); err != nil {
		return plan.StatusFailed, fmt.Errorf("ruleset loaded but not persistent: %w", err)
	}
	return plan.StatusApplied, nil
}

func (r *run) firewallFiles(backend string) ([]plan.File, string) {
	fw := r.plan.Firewall
	if backend == backendNft {
		return []plan.File{fw.Nftables}, "nftables.service"
	}
	return []plan.File{fw.IPTablesV4, fw.IPTablesV6, fw.IPTablesUnit}, path.Base(fw.IPTablesUnit.Path)
}

// enable makes the ruleset persistent, only touching systemd when needed.
func (r *run) enable(unit string) error {
	if r.unitState("is-enabled", unit) == "enabled" {
		return nil
	}
	// --no-reload: enabling only links the unit for the next boot (this
	// boot's ruleset is already loaded), and a manager reload costs ~3 s
	// under emulation in the middle of cloud-init's init stage (measured in
	// the e2e guests' journals: "Reloading." twice per early stage before).
	if _, err := r.Runner.Run("systemctl", "enable", "--no-reload", unit); err != nil {
		return fmt.Errorf("enable %s: %w", unit, err)
	}
	return nil
}

// testRuleset checks the new rules with the tool's dry run before anything
// is written or loaded.
func (r *run) testRuleset(backend string) error {
	fw := r.plan.Firewall
	type test struct {
		f    plan.File
		tool string
		args []string
	}
	tests := []test{{fw.Nftables, "nft", []string{"-c", "-f"}}}
	if backend == backendIPT {
		tests = []test{{fw.IPTablesV4, "iptables-restore", []string{"--test"}}, {fw.IPTablesV6, "ip6tables-restore", []string{"--test"}}}
	}
	for _, t := range tests {
		tmp := workDir + "/" + path.Base(t.f.Path) + ".check"
		if err := r.Root.WriteAtomic(tmp, []byte(t.f.Content), 0o600, ""); err != nil {
			return err
		}
		_, err := r.Runner.Run(t.tool, append(t.args, r.Root.Path(tmp))...)
		r.Root.Remove(tmp)
		if err != nil {
			return fmt.Errorf("%s rejects %s: %w", t.tool, t.f.Path, err)
		}
	}
	return nil
}

func (r *run) loadRuleset(backend string) error {
	fw := r.plan.Firewall
	if backend == backendNft {
		if _, err := r.Runner.Run("nft", "-f", r.Root.Path(fw.Nftables.Path)); err != nil {
			return fmt.Errorf("load ruleset: %w", err)
		}
		return nil
	}
	if _, err := r.Runner.Run("iptables-restore", r.Root.Path(fw.IPTablesV4.Path)); err != nil {
		return fmt.Errorf("load IPv4 rules: %w", err)
	}
	if _, err := r.Runner.Run("ip6tables-restore", r.Root.Path(fw.IPTablesV6.Path)); err != nil {
		return fmt.Errorf("load IPv6 rules: %w", err)
	}
	return nil
}

// verifyFirewall reads the loaded ruleset back and checks it against the
// plan: input policy drop and every allowed port, for IPv4 and IPv6.
func (r *run) verifyFirewall(backend string) error {
	rs, err := r.readFirewall(backend)
	if err != nil {
		return err
	}
	r.setFirewallReport(rs)
	var errs []error
	if rs.PolicyV4 != "drop" || rs.PolicyV6 != "drop" {
		errs = append(errs, fmt.Errorf("input policy is %q (IPv4) / %q (IPv6), want drop", rs.PolicyV4, rs.PolicyV6))
	}
	for _, p := range r.plan.Firewall.Allow {
		if !allows(rs.V4, p.Port, p.Proto) || !allows(rs.V6, p.Port, p.Proto) {
			errs = append(errs, fmt.Errorf("loaded ruleset does not accept %d/%s for both IPv4 and IPv6", p.Port, p.Proto))
		}
	}
	return errors.Join(errs...)
}

func (r *run) setFirewallReport(rs ruleset) {
	policy := rs.PolicyV4
	if rs.PolicyV6 != rs.PolicyV4 {
		policy = "ipv4:" + rs.PolicyV4 + " ipv6:" + rs.PolicyV6
	}
	r.rep.Firewall.InputPolicy = policy
	r.rep.Firewall.AllowedV4 = rs.V4
	r.rep.Firewall.AllowedV6 = rs.V6
}

func (r *run) readFirewall(backend string) (ruleset, error) {
	if backend == backendNft {
		out, err := r.Runner.Run("nft", "-j", "list", "ruleset")
		if err != nil {
			return ruleset{}, fmt.Errorf("nft list ruleset: %w", err)
		}
		return ParseNftJSON(out)
	}
	v4, err := r.Runner.Run("iptables", "-S")
	if err != nil {
		return ruleset{}, fmt.Errorf("iptables -S: %w", err)
	}
	v6, err := r.Runner.Run("ip6tables", "-S")
	if err != nil {
		return ruleset{}, fmt.Errorf("ip6tables -S: %w", err)
	}
	var rs ruleset
	rs.PolicyV4, rs.V4 = ParseIptablesS(string(v4))
	rs.PolicyV6, rs.V6 = ParseIptablesS(string(v6))
	return rs, nil
}

// applyNetlink loads the planned ruleset over netlink when no firewall
// tool is installed yet, so the default-deny rules are in place before
// sshd starts. It writes no file: the package's nft takes over in the late
// stage (nft -f, whose flush ruleset and new table are one transaction),
// and only then is the ruleset made persistent. noTool says why netlink.
func (r *run) applyNetlink(noTool error) (string, error) {
	fw := r.plan.Firewall
	if r.Netlink == nil || (fw.Backend != "" && fw.Backend != "auto" && fw.Backend != backendNft) {
		return plan.StatusWaiting, noTool
	}
	prog, err := parseNftConf(fw.Nftables.Content)
	if err != nil {
		return plan.StatusWaiting, fmt.Errorf("%w; not loaded over netlink: %w", noTool, err)
	}
	if err := r.Netlink.Replace(prog); err != nil {
		// e.g. a kernel without nf_tables: wait for the package as before.
		return plan.StatusWaiting, fmt.Errorf("%w; %w", noTool, err)
	}
	r.rep.Firewall.Backend = backendNetlink
	r.firewallApplied = true
	if err := r.Netlink.Verify(prog); err != nil {
		return r.rollbackFirewall(backendNetlink, nil, fmt.Errorf("netlink ruleset is not the planned one: %w", err))
	}
	r.setFirewallReport(prog.allowed())
	return plan.StatusApplied, nil
}

// rollbackFirewall restores the previous files and reloads them; with no
// previous ruleset it opens the firewall again rather than risk a lockout.
func (r *run) rollbackFirewall(backend string, changed []string, cause error) (string, error) {
	if backend == backendNetlink {
		// Nothing was loaded before (no tool could have loaded it).
		if err := r.Netlink.Flush(); err != nil {
			return plan.StatusFailed, errOr(cause, "rollback: "+err.Error())
		}
		return plan.StatusRolledBack, errOr(cause, "ruleset removed")
	}
	for _, p := range changed {
		if err := r.Root.Restore(p); err != nil {
			return plan.StatusFailed, errOr(cause, "rollback: "+err.Error())
		}
	}
	var err error
	if backend == backendNft {
		p := r.plan.Firewall.Nftables.Path
		if r.Root.Exists(p) {
			_, err = r.Runner.Run("nft", "-f", r.Root.Path(p))
		} else {
			_, err = r.Runner.Run("nft", "flush", "ruleset")
		}
	} else {
		for _, t := range [][2]string{{"iptables", r.plan.Firewall.IPTablesV4.Path}, {"ip6tables", r.plan.Firewall.IPTablesV6.Path}} {
			if r.Root.Exists(t[1]) {
				_, err = r.Runner.Run(t[0]+"-restore", r.Root.Path(t[1]))
			} else if _, err = r.Runner.Run(t[0], "-P", "INPUT", "ACCEPT"); err == nil {
				_, err = r.Runner.Run(t[0], "-F", "INPUT")
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		return plan.StatusFailed, errOr(cause, "rollback reload: "+err.Error())
	}
	return plan.StatusRolledBack, errOr(cause, "previous firewall restored")
}

// firewallFollowSSH rolls the firewall back when SSH went back to a port
// the new ruleset does not accept: never leave sshd behind a closed port.
func (r *run) firewallFollowSSH(sshPort int) {
	fw := r.plan.Firewall
	if fw == nil || allows(fw.Allow, sshPort, "tcp") {
		return
	}
	backend := r.firewallBackend()
	if backend == "" && r.rep.Firewall.Backend == backendNetlink {
		backend = backendNetlink
	}
	files, _ := r.firewallFiles(backend)
	var ours []string
	for _, f := range files {
		if r.Root.Same(f) && r.Root.HasBackup(f.Path) {
			ours = append(ours, f.Path)
		}
	}
	if len(ours) == 0 && !r.firewallApplied {
		return
	}
	cause := fmt.Errorf("SSH rolled back to port %d, which the new ruleset blocks", sshPort)
	status, err := r.rollbackFirewall(backend, ours, cause)
	r.setStep("firewall", status, err)
	r.rep.Firewall.InputPolicy = ""
}

// checkFirewall verifies the loaded ruleset without loading anything.
func (r *run) checkFirewall() (string, error) {
	backend := r.firewallBackend()
	r.rep.Firewall.Backend = backend
	if backend == "" {
		return plan.StatusFailed, r.checkNetlink()
	}
	if err := r.verifyFirewall(backend); err != nil {
		return plan.StatusFailed, err
	}
	return plan.StatusUnchanged, nil
}

// checkNetlink explains a check on a machine without a firewall tool: the
// ruleset may still be loaded over netlink, but it is not persistent.
func (r *run) checkNetlink() error {
	err := errors.New("no firewall tool installed: the ruleset is not persistent")
	if r.Netlink == nil {
		return err
	}
	prog, perr := parseNftConf(r.plan.Firewall.Nftables.Content)
	if perr != nil {
		return fmt.Errorf("%w; %w", err, perr)
	}
	if verr := r.Netlink.Verify(prog); verr != nil {
		return fmt.Errorf("%w; %w", err, verr)
	}
	r.rep.Firewall.Backend = backendNetlink
	r.setFirewallReport(prog.allowed())
	return fmt.Errorf("%w (loaded over netlink, as planned)", err)
}
