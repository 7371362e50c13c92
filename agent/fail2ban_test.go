package agent

import (
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

// On a first boot the fail2ban package starts the daemon from the
// jail.local the early stage wrote; the late stage restarts it only when it
// cannot tell that the running daemon read the planned file.
func TestFail2banRestartDecision(t *testing.T) {
	for _, tc := range []struct {
		name        string
		between     func(m *fakeMachine) // after the early stage, before late
		wantRestart bool
	}{
		{"package started it after the early stage", func(m *fakeMachine) {
			m.uptime = 60
			m.startFail2ban()
		}, false},
		{"it ran before the early stage wrote jail.local", func(m *fakeMachine) {
			m.f2bStart, m.f2bUp, m.f2bPort = 3, true, "50022"
		}, true},
		{"no start time", func(m *fakeMachine) {
			m.startFail2ban()
			m.f2bStart = 0
		}, true},
		{"the early stage ran in another boot", func(m *fakeMachine) {
			m.uptime = 60
			m.startFail2ban()
			m.write("/proc/sys/kernel/random/boot_id", "7d3f2d3e-6a53-4b1c-8a52-1f4e3b8d9c00\n", 0o444)
		}, true},
		{"jail.local changed since", func(m *fakeMachine) {
			m.uptime = 60
			m.startFail2ban()
			m.write("/etc/fail2ban/jail.local", "[sshd]\nport = 50022\n# edited\n", 0o644)
		}, true},
		{"daemon stopped", func(m *fakeMachine) {
			m.uptime = 60
			m.startFail2ban()
			m.f2bUp = false
		}, true},
		{"running daemon watches another port", func(m *fakeMachine) {
			m.uptime = 60
			m.startFail2ban()
			m.f2bPort = "22"
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFake(t)
			m.install(testPlan())
			if code, r, out := m.apply(StageEarly, false); code != ExitOK {
				t.Fatalf("early: exit %d %s %+v", code, out, r.Steps)
			}
			m.active["ssh.service"] = true
			m.startSSH(m.sshdPort())
			m.tools["fail2ban-client"], m.uuPkg = true, true
			tc.between(m)
			m.uptime += 30
			before := len(m.callList())
			code, r, out := m.apply(StageLate, false)
			calls := m.callList()[before:]
			if code != ExitOK || r.Fail2ban.State != "ok" || r.Fail2ban.Jails["sshd"] != "50022" || stepStatus(r, StageLate, "fail2ban") != plan.StatusApplied {
				t.Fatalf("exit %d %s fail2ban %+v steps %+v", code, out, r.Fail2ban, r.Steps)
			}
			restarted := hasCall(calls, "systemctl restart fail2ban.service")
			if restarted != tc.wantRestart || hasCall(calls, "fail2ban-client -t") != tc.wantRestart {
				t.Errorf("restart %v, want %v; calls %q", restarted, tc.wantRestart, calls)
			}
		})
	}
}

// A later run of the late stage for the same plan never restarts: it only
// proves the jails again.
func TestFail2banLaterRunOnlyVerifies(t *testing.T) {
	m := newFake(t)
	m.install(testPlan())
	if code, r, out := m.firstBoot(t); code != ExitOK {
		t.Fatalf("first boot: %d %s %+v", code, out, r.Steps)
	}
	before := len(m.callList())
	code, r, _ := m.apply(StageLate, true)
	if code != ExitOK || stepStatus(r, StageLate, "fail2ban") != plan.StatusUnchanged {
		t.Fatalf("exit %d %+v", code, r.Steps)
	}
	for _, c := range m.callList()[before:] {
		if strings.Contains(c, "fail2ban.service") && !strings.HasPrefix(c, "systemctl show") || c == "fail2ban-client -t" {
			t.Errorf("later run ran %q", c)
		}
	}
}

func TestParseProperties(t *testing.T) {
	got := ParseProperties("ActiveState=active\nExecMainStartTimestampMonotonic=77368691\nEmpty=\nnoise\n")
	want := map[string]string{"ActiveState": "active", "ExecMainStartTimestampMonotonic": "77368691", "Empty": ""}
	if len(got) != len(want) {
		t.Fatalf("%q", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// A jail planned for all ports (strict's recidive) is proven by its action,
// not by the port property, which fail2ban 1.0 reports as jail.conf's
// [DEFAULT] "0:65535" for an all-ports action (the strict profile's first
// boot failed on exactly that).
func TestFail2banAllPortsJail(t *testing.T) {
	for _, tc := range []struct {
		name, action string
		wantOK       bool
	}{
		{"nftables all-ports action", "nftables-allports", true},
		{"iptables all-ports action", "iptables-allports", true},
		{"type parameter form", "nftables[type=allports]", true},
		{"multiport action bans only some ports", "nftables-multiport", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFake(t)
			p := testPlan()
			p.Fail2ban.Jails["recidive"] = ""
			m.install(p)
			if code, r, out := m.apply(StageEarly, false); code != ExitOK {
				t.Fatalf("early: exit %d %s %+v", code, out, r.Steps)
			}
			m.active["ssh.service"] = true
			m.startSSH(m.sshdPort())
			m.tools["fail2ban-client"], m.uuPkg = true, true
			m.uptime = 60
			m.startFail2ban()
			m.f2bRecidiveAction = tc.action
			m.uptime += 30
			code, r, out := m.apply(StageLate, false)
			ok := code == ExitOK && r.Fail2ban.State == "ok" && stepStatus(r, StageLate, "fail2ban") == plan.StatusApplied
			if ok != tc.wantOK {
				t.Fatalf("hardened %v, want %v: exit %d %s fail2ban %+v", ok, tc.wantOK, code, out, r.Fail2ban)
			}
			if tc.wantOK && r.Fail2ban.Jails["recidive"] != "all ports ("+tc.action+")" {
				t.Errorf("report says recidive bans on %q", r.Fail2ban.Jails["recidive"])
			}
		})
	}
}
