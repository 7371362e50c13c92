package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// report decodes report.json strictly with encoding/json: this also holds
// EncodeReport and plan.Report's tags together.
func (m *fakeMachine) report() *plan.Report {
	m.t.Helper()
	data := m.read(plan.ReportPath)
	if data == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	var r plan.Report
	if err := dec.Decode(&r); err != nil {
		m.t.Fatalf("report.json: %v\n%s", err, data)
	}
	return &r
}

func stepStatus(r *plan.Report, stage, name string) string {
	for _, s := range r.Steps {
		if s.Stage == stage && s.Name == name {
			return s.Status
		}
	}
	return "(none)"
}

func hasCall(calls []string, prefix string) bool {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// firstBoot simulates cloud-init: early stage, then sshd starts (if a
// service), packages arrive, late stage.
func (m *fakeMachine) firstBoot(t *testing.T) (int, *plan.Report, string) {
	t.Helper()
	if code, r, out := m.apply(StageEarly, false); code != ExitOK {
		t.Fatalf("early: exit %d\n%s\n%+v", code, out, r.Steps)
	}
	if m.units["ssh.service"] == "enabled" && m.units["ssh.socket"] != "enabled" {
		m.active["ssh.service"] = true
		m.startSSH(m.sshdPort())
	}
	// Socket units start after sysinit.target, which waits for cloud-init.
	if m.units["ssh.socket"] == "enabled" && !m.active["ssh.socket"] {
		m.active["ssh.socket"] = true
		m.startSSH(m.socketPort(m.exists("/usr/lib/systemd/system-generators/sshd-socket-generator")))
	}
	m.tools["fail2ban-client"] = true
	m.uuPkg = true
	m.f2bUp = true
	return m.apply(StageLate, false)
}

func TestActivation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		setup      func(m *fakeMachine)
		want       string
		socketFile bool
		restart    []string
		forbid     string // a call that must not happen
	}{
		{"debian ssh.service", func(m *fakeMachine) {}, actService, false, nil, ""},
		{"listenstream socket", func(m *fakeMachine) {
			m.units["ssh.socket"], m.units["ssh.service"] = "enabled", "disabled"
			m.active["ssh.socket"] = true
			m.listen[22] = true
		}, actSocket, true, []string{"systemctl daemon-reload", "systemctl restart ssh.socket"}, ""},
		{"generated socket 24.04", func(m *fakeMachine) {
			m.units["ssh.socket"], m.units["ssh.service"] = "enabled", "disabled"
			m.active["ssh.socket"] = true
			m.listen[22] = true
			m.write("/usr/lib/systemd/system-generators/sshd-socket-generator", "", 0o755)
		}, actGenerated, false, []string{"systemctl daemon-reload", "systemctl restart ssh.socket"}, ""},
		// Debian 12 first boot: ssh.socket is enabled but starts only after
		// cloud-init (sockets come after sysinit.target). Restarting it from
		// the early stage would deadlock; it must start with the new port.
		{"listenstream socket not started yet", func(m *fakeMachine) {
			m.units["ssh.socket"], m.units["ssh.service"] = "enabled", "disabled"
		}, actSocket, true, []string{"systemctl daemon-reload"}, "systemctl restart ssh.socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFake(t)
			tc.setup(m)
			m.install(testPlan())
			code, r, out := m.firstBoot(t)
			if code != ExitOK || r.Result != plan.ResultHardened {
				t.Fatalf("exit %d result %s\n%s\n%+v", code, r.Result, out, r.Steps)
			}
			if r.SSH.Activation != tc.want {
				t.Errorf("activation %q, want %q", r.SSH.Activation, tc.want)
			}
			if got := m.exists("/etc/systemd/system/ssh.socket.d/10-hardbake.conf"); got != tc.socketFile {
				t.Errorf("socket drop-in written: %v, want %v", got, tc.socketFile)
			}
			calls := m.callList()
			for _, c := range tc.restart {
				if !hasCall(calls, c) {
					t.Errorf("missing %q in %q", c, calls)
				}
			}
			if tc.forbid != "" && hasCall(calls, tc.forbid) {
				t.Errorf("%q must not run at first boot: %q", tc.forbid, calls)
			}
			if tc.want == actService && hasCall(calls, "systemctl restart ssh") {
				t.Errorf("first boot restarted ssh.service from inside cloud-init: %q", calls)
			}
			if !strings.HasPrefix(out, "hardbake: hardened ssh=50022 firewall=nftables") {
				t.Errorf("summary %q", out)
			}
			if r.SSH.Port22Open || !strings.HasPrefix(r.SSH.Banner, "SSH-2.0-") {
				t.Errorf("ssh state %+v", r.SSH)
			}
		})
	}
}

func TestFirewallBackends(t *testing.T) {
	t.Run("iptables", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		m.tools["iptables-restore"], m.tools["ip6tables-restore"], m.tools["iptables"], m.tools["ip6tables"] = true, true, true, true
		m.install(testPlan())
		code, r, out := m.firstBoot(t)
		if code != ExitOK || r.Firewall.Backend != backendIPT || r.Firewall.InputPolicy != "drop" {
			t.Fatalf("exit %d firewall %+v\n%s", code, r.Firewall, out)
		}
		if len(r.Firewall.AllowedV6) != 2 || !hasCall(m.callList(), "systemctl enable --no-reload hardbake-iptables.service") {
			t.Errorf("v6 %+v calls %q", r.Firewall.AllowedV6, m.callList())
		}
	})
	t.Run("none then late", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		m.install(testPlan())
		code, r, out := m.apply(StageEarly, false)
		if code != ExitOK || stepStatus(r, StageEarly, "firewall") != plan.StatusWaiting {
			t.Fatalf("early: exit %d %+v", code, r.Steps)
		}
		if !strings.Contains(out, "waiting=firewall") {
			t.Errorf("summary %q", out)
		}
		m.tools["nft"] = true // the package arrived
		code, r, out = m.firstBootLate(t)
		if code != ExitOK || stepStatus(r, StageLate, "firewall") != plan.StatusApplied || r.Firewall.InputPolicy != "drop" {
			t.Fatalf("late: exit %d\n%s\n%+v", code, out, r.Steps)
		}
	})
	t.Run("none at all", func(t *testing.T) {
		m := newFake(t)
		m.tools["nft"] = false
		m.install(testPlan())
		m.apply(StageEarly, false)
		code, r, _ := m.firstBootLate(t)
		if code != ExitFailed || stepStatus(r, StageLate, "firewall") != plan.StatusFailed {
			t.Fatalf("exit %d %+v", code, r.Steps)
		}
	})
	t.Run("refuses plan without ssh port", func(t *testing.T) {
		m := newFake(t)
		p := testPlan()
		p.Firewall.Allow = []plan.Port{{Port: 443, Proto: "tcp"}}
		m.install(p)
		code, r, out := m.apply(StageEarly, false)
		if code != ExitFailed || stepStatus(r, StageEarly, "firewall") != plan.StatusFailed {
			t.Fatalf("exit %d %+v", code, r.Steps)
		}
		if hasCall(m.callList(), "nft -f") || m.exists("/etc/nftables.conf") {
			t.Errorf("ruleset loaded or written: %q", m.callList())
		}
		if !strings.Contains(out, "FAILED step=firewall") {
			t.Errorf("summary %q", out)
		}
	})
	t.Run("loaded ruleset does not verify", func(t *testing.T) {
		m := newFake(t)
		p := testPlan()
		p.Firewall.Nftables.Content = strings.Replace(p.Firewall.Nftables.Content, "policy drop", "policy accept", 1)
		m.install(p)
		code, r, _ := m.apply(StageEarly, false)
		if code != ExitFailed || stepStatus(r, StageEarly, "firewall") != plan.StatusRolledBack {
			t.Fatalf("exit %d %+v", code, r.Steps)
		}
		if m.exists("/etc/nftables.conf") || !hasCall(m.callList(), "nft flush ruleset") {
			t.Errorf("not rolled back: %q", m.callList())
		}
	})
}

func (m *fakeMachine) firstBootLate(t *testing.T) (int, *plan.Report, string) {
	m.active["ssh.service"] = true
	m.startSSH(m.sshdPort())
	m.tools["fail2ban-client"] = true
	m.uuPkg, m.f2bUp = true, true
	return m.apply(StageLate, false)
}

func TestSSHRollback(t *testing.T) {
	t.Run("sshd -t rejects", func(t *testing.T) {
		m := newFake(t)
		p := testPlan()
		p.SSH.DropIn.Content += "Bogus yes\n"
		m.install(p)
		code, r, out := m.apply(StageEarly, false)
		if code != ExitFailed || stepStatus(r, StageEarly, "ssh") != plan.StatusFailed {
			t.Fatalf("exit %d %+v", code, r.Steps)
		}
		if m.exists(p.SSH.DropIn.Path) {
			t.Error("bad drop-in reached sshd_config.d")
		}
		if !strings.Contains(out, "Bogus") {
			t.Errorf("summary %q", out)
		}
		// sshd stays on 22: the firewall loaded before SSH must not block it.
		if stepStatus(r, StageEarly, "firewall") != plan.StatusRolledBack || m.nftRules != "" {
			t.Errorf("firewall still blocks the port sshd stays on: %+v, ruleset %q", r.Steps, m.nftRules)
		}
	})
	t.Run("new port taken at first boot: late stage starts sshd on 22", func(t *testing.T) {
		m := newFake(t)
		m.install(testPlan())
		if code, r, _ := m.apply(StageEarly, false); code != ExitOK {
			t.Fatalf("early %+v", r.Steps)
		}
		// ssh.service failed to bind the new port and is down.
		m.sshdBroken, m.fixOnRollback = true, true
		m.tools["fail2ban-client"], m.uuPkg, m.f2bUp = true, true, true
		code, r, out := m.apply(StageLate, false)
		if code != ExitFailed || stepStatus(r, StageLate, "ssh-verify") != plan.StatusRolledBack {
			t.Fatalf("exit %d\n%s\n%+v", code, out, r.Steps)
		}
		if !m.listen[22] || !m.active["ssh.service"] {
			t.Errorf("sshd not brought back on 22: listen %v active %v", m.listen, m.active)
		}
		if m.nftRules != "" {
			t.Errorf("ruleset blocking 22 still loaded")
		}
	})
	t.Run("restart fails", func(t *testing.T) {
		m := newFake(t)
		m.active["ssh.service"] = true // a later run: sshd is up on 22
		m.listen[22] = true
		m.write("/etc/ssh/sshd_config.d/10-hardbake.conf", "Port 22\n", 0o600)
		m.fail["systemctl restart ssh.service"] = errors.New("Job failed")
		m.install(testPlan())
		code, r, out := m.apply(StageEarly, false)
		if code != ExitFailed || stepStatus(r, StageEarly, "ssh") != plan.StatusFailed {
			t.Fatalf("exit %d %+v\n%s", code, r.Steps, out)
		}
		if got := m.read("/etc/ssh/sshd_config.d/10-hardbake.conf"); got != "Port 22\n" {
			t.Errorf("drop-in not restored: %q", got)
		}
	})
	t.Run("new port silent, old port answers", func(t *testing.T) {
		m := newFake(t)
		m.install(testPlan())
		if code, r, _ := m.apply(StageEarly, false); code != ExitOK {
			t.Fatalf("early %+v", r.Steps)
		}
		// sshd starts after cloud-init but does not listen on the new port.
		m.active["ssh.service"] = true
		m.sshdBroken = true
		m.tools["fail2ban-client"], m.uuPkg, m.f2bUp = true, true, true
		// Once the drop-in is gone sshd works on 22 again.
		m.fixOnRollback = true
		code, r, out := m.apply(StageLate, false)
		if code != ExitFailed || stepStatus(r, StageLate, "ssh-verify") != plan.StatusRolledBack {
			t.Fatalf("exit %d\n%s\n%+v", code, out, r.Steps)
		}
		if m.exists("/etc/ssh/sshd_config.d/10-hardbake.conf") {
			t.Error("drop-in still there after rollback")
		}
		if !m.listen[22] || !strings.Contains(out, "hardbake: FAILED step=") || stepStatus(r, StageLate, "ssh-verify") != plan.StatusRolledBack {
			t.Errorf("listen %v summary %q", m.listen, out)
		}
		// The firewall would block 22: it must follow SSH back.
		if stepStatus(r, StageEarly, "firewall") != plan.StatusRolledBack && stepStatus(r, StageLate, "firewall") != plan.StatusRolledBack {
			t.Errorf("firewall not rolled back: %+v", r.Steps)
		}
		if m.nftRules != "" {
			t.Errorf("ruleset still loaded")
		}
	})
}

func TestIdempotentAndLaterBoot(t *testing.T) {
	m := newFake(t)
	m.units["ssh.socket"], m.units["ssh.service"] = "enabled", "disabled"
	m.active["ssh.socket"] = true
	m.install(testPlan())
	if code, r, out := m.firstBoot(t); code != ExitOK {
		t.Fatalf("first boot: %d %s %+v", code, out, r.Steps)
	}
	// A later boot: bootcmd runs again and must be a fast no-op.
	before := len(m.callList())
	m.write(plan.StateDir+"/admin-was-here", "", 0o600)
	m.write("/etc/ssh/sshd_config.d/10-hardbake.conf", "Port 50022\n# admin edit\n", 0o600)
	code, _, out := m.apply(StageEarly, false)
	if code != ExitOK || !strings.Contains(out, "already applied") || !slices.Equal(m.callList()[before:], []string{"sha256sum -- " + plan.PlanPath}) {
		t.Fatalf("later boot: exit %d %q, calls %q", code, out, m.callList()[before:])
	}
	if !strings.Contains(m.read("/etc/ssh/sshd_config.d/10-hardbake.conf"), "admin edit") {
		t.Error("later boot undid the admin's change")
	}
	m.write("/etc/ssh/sshd_config.d/10-hardbake.conf", testPlan().SSH.DropIn.Content, 0o600)
	for _, stage := range []string{StageEarly, StageLate} {
		before := len(m.callList())
		code, r, out := m.apply(stage, true)
		if code != ExitOK {
			t.Fatalf("%s again: exit %d %s %+v", stage, code, out, r.Steps)
		}
		for _, s := range r.Steps {
			if s.Stage == stage && s.Status != plan.StatusUnchanged {
				t.Errorf("%s again: step %s is %s", stage, s.Name, s.Status)
			}
		}
		for _, c := range m.callList()[before:] {
			if strings.Contains(c, "restart") || strings.Contains(c, "nft -f") || strings.HasPrefix(c, "systemctl enable") || strings.HasPrefix(c, "usermod") {
				t.Errorf("%s again ran %q", stage, c)
			}
		}
	}
}

// A run that stops before its first step still leaves a report saying why,
// prints the FAILED line and touches nothing else on the machine (SSH
// stays as it was): only sha256sum may have run.
func TestCannotStartLeavesReport(t *testing.T) {
	good, _ := render.EncodePlan(testPlan())
	for _, tc := range []struct {
		name   string
		setup  func(m *fakeMachine)
		digest string
		code   int
		want   string
	}{
		{"plan missing", func(m *fakeMachine) {}, "", ExitUsage, "read plan: open"},
		{"digest mismatch", func(m *fakeMachine) { m.install(testPlan()) }, strings.Repeat("0", 64), ExitUsage, "plan digest mismatch: got sha256 " + render.PlanDigest(good)},
		{"sha256sum fails", func(m *fakeMachine) {
			m.install(testPlan())
			m.fail["sha256sum"] = errors.New("sha256sum: read error")
		}, "", ExitUsage, "read error"},
		{"unknown version", func(m *fakeMachine) { m.write(plan.PlanPath, `{"version":2,"ssh":{"port":22}}`, 0o600) }, "", ExitUsage, "plan version 2 is not supported"},
		{"undecodable", func(m *fakeMachine) { m.write(plan.PlanPath, `{"version":1,`, 0o600) }, "", ExitUsage, "decode plan"},
		{"duplicate key", func(m *fakeMachine) { m.write(plan.PlanPath, `{"version":1,"ssh":{"port":22},"version":1}`, 0o600) }, "", ExitUsage, `duplicate key "version"`},
		{"state corrupt", func(m *fakeMachine) {
			m.install(testPlan())
			m.write(statePath, "{", 0o600)
		}, "", ExitFailed, "read state"},
	} {
		for _, stage := range []string{StageEarly, StageLate, StageCheck} {
			t.Run(tc.name+"/"+stage, func(t *testing.T) {
				m := newFake(t)
				tc.setup(m)
				a := m.agent()
				var stderr strings.Builder
				a.Err = &stderr
				code, err := a.Run(Options{Stage: stage, PlanPath: plan.PlanPath, WantDigest: tc.digest})
				if code != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("exit %d err %v, want %d %q", code, err, tc.code, tc.want)
				}
				for _, c := range m.callList() {
					if !strings.HasPrefix(c, "sha256sum -- ") {
						t.Errorf("a run that could not start ran %q", c)
					}
				}
				out := a.Out.(*strings.Builder).String()
				var raw []byte
				if stage == StageCheck {
					// stdout is the report alone; the line goes to stderr.
					raw = []byte(out)
					if !strings.HasPrefix(stderr.String(), "hardbake: FAILED step=plan (failed): ") || m.exists(plan.ReportPath) {
						t.Errorf("check: stderr %q, report written %v", stderr.String(), m.exists(plan.ReportPath))
					}
				} else {
					raw = []byte(m.read(plan.ReportPath))
					if line := "hardbake: FAILED step=plan (failed): "; !strings.HasPrefix(out, line) || !strings.Contains(out, tc.want) || strings.Count(out, "\n") != 1 {
						t.Errorf("console %q", out)
					}
					if mode, err := statMode(m.root + plan.ReportPath); err != nil || mode != 0o600 {
						t.Errorf("report mode %o %v", mode, err)
					}
				}
				var rep plan.Report
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&rep); err != nil || dec.More() {
					t.Fatalf("report %q: %v", raw, err)
				}
				if rep.Result != plan.ResultFailed || rep.Stage != stage || len(rep.Steps) != 1 ||
					rep.Steps[0].Name != "plan" || rep.Steps[0].Status != plan.StatusFailed || !strings.Contains(rep.Steps[0].Error, tc.want) {
					t.Errorf("report %+v", rep)
				}
				if m.exists(testPlan().SSH.DropIn.Path) || m.exists(statePath) && tc.name != "state corrupt" {
					t.Error("a run that could not start changed the machine")
				}
			})
		}
	}
}

func TestRightDigestAccepted(t *testing.T) {
	m := newFake(t)
	digest := m.install(testPlan())
	if code, err := m.agent().Run(Options{Stage: StageEarly, PlanPath: plan.PlanPath, WantDigest: digest}); code != ExitOK {
		t.Errorf("right digest: exit %d err %v", code, err)
	}
}

func TestPartialAndCheck(t *testing.T) {
	m := newFake(t)
	m.install(testPlan())
	m.apply(StageEarly, false)
	m.active["ssh.service"] = true
	m.startSSH(m.sshdPort())
	code, r, out := m.apply(StageLate, false) // fail2ban and unattended-upgrades missing
	if code != ExitPartial || r.Result != plan.ResultPartial || !strings.HasPrefix(out, "hardbake: partial") {
		t.Fatalf("exit %d %s %q", code, r.Result, out)
	}
	if r.Fail2ban.State != "missing" || r.Updates.State != "missing" {
		t.Errorf("states %+v %+v", r.Fail2ban, r.Updates)
	}
	// The packages arrive; the admin re-runs late; then check passes.
	m.tools["fail2ban-client"], m.uuPkg, m.f2bUp = true, true, true
	if code, r, out := m.apply(StageLate, false); code != ExitOK {
		t.Fatalf("late again: %d %s %+v", code, out, r.Steps)
	}
	a := m.agent()
	code, err := a.Run(Options{Stage: StageCheck, PlanPath: plan.PlanPath})
	out = a.Out.(*strings.Builder).String()
	if code != ExitOK || err != nil {
		t.Fatalf("check: %d %v\n%s", code, err, out)
	}
	var rep plan.Report
	// stdout is one JSON document and nothing else (json.Unmarshal
	// refuses trailing text, the summary line included).
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result != plan.ResultHardened {
		t.Fatalf("check report: %v %+v", err, rep)
	}
	// Drift: the admin re-enables password login.
	m.write("/etc/ssh/sshd_config.d/10-hardbake.conf", "Port 50022\nPasswordAuthentication yes\n", 0o600)
	a = m.agent()
	if code, _ := a.Run(Options{Stage: StageCheck, PlanPath: plan.PlanPath}); code != ExitFailed {
		t.Errorf("drift: exit %d", code)
	}
}

func TestReportContent(t *testing.T) {
	m := newFake(t)
	m.install(testPlan())
	code, r, _ := m.firstBoot(t)
	if code != ExitOK {
		t.Fatal(code)
	}
	want := map[string]string{"port": "50022", "permitrootlogin": "no", "passwordauthentication": "no", "kbdinteractiveauthentication": "no", "maxauthtries": "3"}
	for k, v := range want {
		if r.SSH.Effective[k] != v {
			t.Errorf("effective %s = %q, want %q", k, r.SSH.Effective[k], v)
		}
	}
	if r.PlanVersion != 1 || len(r.PlanDigest) != 64 || r.AgentVersion != "test" || r.Stage != StageLate {
		t.Errorf("header %+v", r)
	}
	if r.Fail2ban.State != "ok" || r.Fail2ban.Jails["sshd"] != "50022" || r.Updates.State != "ok" || !r.Updates.TimerEnabled {
		t.Errorf("fail2ban %+v updates %+v", r.Fail2ban, r.Updates)
	}
	fp, _ := sshKeygenFingerprint(m.read("/etc/ssh/ssh_host_ed25519_key.pub"))
	if len(r.HostKeys) != 1 || r.HostKeys[0].Type != "ssh-ed25519" || r.HostKeys[0].Fingerprint != fp {
		t.Errorf("host keys %+v, want ssh-ed25519 %s", r.HostKeys, fp)
	}
	data, _ := render.EncodePlan(testPlan())
	if r.PlanDigest != render.PlanDigest(data) {
		t.Errorf("plan digest %s, want %s", r.PlanDigest, render.PlanDigest(data))
	}
	names := []string{}
	for _, s := range r.Steps {
		names = append(names, s.Stage+"/"+s.Name+"="+s.Status)
		if s.Uptime != 12.5 {
			t.Errorf("uptime %v", s.Uptime)
		}
	}
	if got := strings.Join(names, " "); got != "early/firewall=applied early/ssh=applied early/sysctl=applied early/fail2ban-config=applied early/updates-config=applied late/firewall=unchanged late/ssh-verify=applied late/admin-user=applied late/root-password=applied late/fail2ban=applied late/unattended-upgrades=applied" {
		t.Errorf("steps %s", got)
	}
	if !strings.HasPrefix(m.read("/etc/shadow"), "root:!") {
		t.Error("root password not locked")
	}
	info, err := statMode(m.root + plan.ReportPath)
	if err != nil || info != 0o600 {
		t.Errorf("report mode %o %v", info, err)
	}
	// EncodeReport and encoding/json agree on the whole document.
	std, _ := json.Marshal(r)
	var mine plan.Report
	if err := json.Unmarshal(std, &mine); err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal(std, &a)
	json.Unmarshal(EncodeReport(&mine), &b)
	if !bytes.Equal(mustJSON(a), mustJSON(b)) {
		t.Errorf("EncodeReport differs from encoding/json:\n%s\n%s", mustJSON(a), mustJSON(b))
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Before cloud-init generates host keys, every sshd -t/-T of one run shares
// one throwaway key, and the run removes it.
func TestThrowawayHostKeyOncePerRun(t *testing.T) {
	m := newFake(t)
	if err := os.Remove(filepath.Join(m.root, "/etc/ssh/ssh_host_ed25519_key")); err != nil {
		t.Fatal(err)
	}
	m.install(testPlan())
	if code, r, out := m.apply(StageEarly, false); code != ExitOK {
		t.Fatalf("early: exit %d %s %+v", code, out, r.Steps)
	}
	keygens, sshds := 0, 0
	for _, c := range m.callList() {
		if strings.HasPrefix(c, "ssh-keygen -q") {
			keygens++
		}
		if strings.HasPrefix(c, "sshd -") {
			sshds++
			if !strings.Contains(c, "HostKey="+workDir+"/hostkey-") {
				t.Errorf("%q without the throwaway key", c)
			}
		}
	}
	if keygens != 1 || sshds < 3 {
		t.Errorf("%d ssh-keygen for %d sshd calls, want 1 for several: %q", keygens, sshds, m.callList())
	}
	if left, _ := filepath.Glob(filepath.Join(m.root, workDir, "hostkey-*")); len(left) > 0 {
		t.Errorf("throwaway keys left behind: %q", left)
	}
}
