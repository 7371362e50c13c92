package agent

import (
	"errors"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

// fakeNetlink records what the agent loads over netlink.
type fakeNetlink struct {
	loaded             *nftProgram
	replaces, flushes  int
	replaceErr, verErr error
}

func (f *fakeNetlink) Replace(p *nftProgram) error {
	f.replaces++
	if f.replaceErr != nil {
		return f.replaceErr
	}
	f.loaded = p
	return nil
}

func (f *fakeNetlink) Verify(p *nftProgram) error {
	if f.verErr != nil {
		return f.verErr
	}
	if f.loaded == nil || len(f.loaded.Chains) != len(p.Chains) {
		return errors.New("not loaded")
	}
	return nil
}

func (f *fakeNetlink) Flush() error { f.flushes++; f.loaded = nil; return nil }

// netlinkPlan is testPlan with a ruleset in the template's own statements.
func netlinkPlan() *plan.Plan {
	p := testPlan()
	p.Firewall.Nftables.Content = "#!/usr/sbin/nft -f\nflush ruleset\n\ntable inet hardbake {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\n" +
		"\t\tct state established,related accept\n\t\tiif \"lo\" accept\n\t\ttcp dport 50022 accept comment \"ssh\"\n\t\ttcp dport 443 accept\n\t}\n}\n"
	return p
}

func TestFirewallNetlink(t *testing.T) {
	t.Run("netlink early, the package's nft late", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		nl := &fakeNetlink{}
		m.netlink = nl
		m.install(netlinkPlan())
		code, r, out := m.apply(StageEarly, false)
		if code != ExitOK || stepStatus(r, StageEarly, "firewall") != plan.StatusApplied || r.Firewall.Backend != backendNetlink {
			t.Fatalf("early: exit %d %+v %+v\n%s", code, r.Firewall, r.Steps, out)
		}
		if !strings.Contains(out, "firewall=netlink") || strings.Contains(out, "waiting=firewall") {
			t.Errorf("summary %q", out)
		}
		if r.Firewall.InputPolicy != "drop" || !allows(r.Firewall.AllowedV4, 50022, "tcp") || !allows(r.Firewall.AllowedV6, 443, "tcp") {
			t.Errorf("report %+v", r.Firewall)
		}
		if nl.replaces != 1 || nl.loaded == nil {
			t.Fatalf("replaces %d", nl.replaces)
		}
		// Nothing is written before the package: its nftables.conf is
		// installed and loaded by nft in the late stage.
		if m.exists("/etc/nftables.conf") || m.units["nftables.service"] == "enabled" {
			t.Errorf("wrote or enabled before the package: %q", m.callList())
		}
		m.tools["nft"] = true // the package arrived
		code, r, out = m.firstBootLate(t)
		if code != ExitOK || stepStatus(r, StageLate, "firewall") != plan.StatusApplied || r.Firewall.Backend != backendNft {
			t.Fatalf("late: exit %d %+v\n%s", code, r.Steps, out)
		}
		if !hasCall(m.callList(), "nft -f") || m.units["nftables.service"] != "enabled" || nl.flushes != 0 {
			t.Errorf("late calls %q units %v flushes %d", m.callList(), m.units, nl.flushes)
		}
	})
	t.Run("kernel refuses", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		m.netlink = &fakeNetlink{replaceErr: errors.New("netlink: load ruleset: protocol not supported")}
		m.install(netlinkPlan())
		code, r, out := m.apply(StageEarly, false)
		if code != ExitOK || stepStatus(r, StageEarly, "firewall") != plan.StatusWaiting || !strings.Contains(out, "waiting=firewall") {
			t.Fatalf("exit %d %+v %q", code, r.Steps, out)
		}
	})
	t.Run("loaded ruleset is not the plan's", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		nl := &fakeNetlink{verErr: errors.New("chain input rule 3: expression 4 differs")}
		m.netlink = nl
		m.install(netlinkPlan())
		_, r, _ := m.apply(StageEarly, false)
		if stepStatus(r, StageEarly, "firewall") != plan.StatusRolledBack || nl.flushes != 1 || nl.loaded != nil {
			t.Fatalf("%+v flushes %d", r.Steps, nl.flushes)
		}
	})
	t.Run("statement netlink does not know", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		nl := &fakeNetlink{}
		m.netlink = nl
		m.install(testPlan()) // "priority 0": not the template's wording
		_, r, _ := m.apply(StageEarly, false)
		var errText string
		for _, s := range r.Steps {
			if s.Name == "firewall" {
				errText = s.Error
			}
		}
		if stepStatus(r, StageEarly, "firewall") != plan.StatusWaiting || nl.replaces != 0 || !strings.Contains(errText, "not loaded over netlink: nftables.conf:5") {
			t.Fatalf("%+v replaces %d", r.Steps, nl.replaces)
		}
	})
	t.Run("iptables backend planned", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		nl := &fakeNetlink{}
		m.netlink = nl
		p := netlinkPlan()
		p.Firewall.Backend = backendIPT
		m.install(p)
		_, r, _ := m.apply(StageEarly, false)
		if stepStatus(r, StageEarly, "firewall") != plan.StatusWaiting || nl.replaces != 0 {
			t.Fatalf("%+v replaces %d", r.Steps, nl.replaces)
		}
	})
}
