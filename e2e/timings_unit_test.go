package e2e

import (
	"testing"
	"time"

	"hardbake.dev/hardbake/plan"
)

// The journal arithmetic behind the timings table, without a guest. The
// console line puts the kernel's clock zero 2 s after QEMU started.
func TestComputeTimingsFail2ban(t *testing.T) {
	start := time.Now()
	lines := []consoleLine{{Text: "[    0.500000] Linux version 6.1", At: start.Add(2500 * time.Millisecond)}}
	journal := `[   40.100000] host systemd[1]: Started ssh.service - OpenBSD Secure Shell server.
[   40.200000] host sshd[400]: Server listening on 0.0.0.0 port 50022.
[   77.000000] host systemd[1]: Started fail2ban.service - Fail2Ban Service.
[  115.000000] host systemd[1]: Started fail2ban.service - Fail2Ban Service.
`
	for _, tc := range []struct {
		name       string
		rep        *plan.Report
		reference  bool
		journal    string
		wantF2B    float64
		wantFull   float64
		wantSSHAnd float64
	}{
		{"agent verified the package's daemon", &plan.Report{Steps: []plan.Step{
			{Name: "firewall", Stage: "early", Status: plan.StatusApplied, Uptime: 25},
			{Name: "ssh", Stage: "early", Status: plan.StatusApplied, Uptime: 26},
			{Name: "fail2ban", Stage: "late", Status: plan.StatusApplied, Uptime: 100},
			{Name: "unattended-upgrades", Stage: "late", Status: plan.StatusApplied, Uptime: 100.3},
		}}, false, journal, 79, 102.3, 28},
		{"agent restarted it: the restart counts", &plan.Report{Steps: []plan.Step{
			{Name: "firewall", Stage: "early", Status: plan.StatusApplied, Uptime: 25},
			{Name: "ssh", Stage: "early", Status: plan.StatusApplied, Uptime: 26},
			{Name: "fail2ban", Stage: "late", Status: plan.StatusApplied, Uptime: 120},
		}}, false, journal, 117, 122, 28},
		{"fail2ban never verified", &plan.Report{Steps: []plan.Step{
			{Name: "fail2ban", Stage: "late", Status: plan.StatusWaiting, Uptime: 100},
		}}, false, journal, -1, 102, -1},
		{"reference: its runcmd restart", nil, true, journal +
			"[  105.000000] host e2e-reference[1]: ssh moved to port 50022\n" +
			"[  108.000000] host e2e-reference[2]: firewall loaded\n" +
			"[  118.000000] host e2e-reference[3]: fail2ban active\n", 117, 120, 110},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := computeTimings(start, lines, tc.journal, tc.rep, 50022, tc.reference)
			if tm.KernelUp != 2 || tm.Fail2banActive != tc.wantF2B || tm.FullyHardened != tc.wantFull || tm.SSHAndFirewall != tc.wantSSHAnd {
				t.Errorf("kernel up %v, fail2ban active %v (want %v), fully hardened %v (want %v), SSH+firewall %v (want %v)",
					tm.KernelUp, tm.Fail2banActive, tc.wantF2B, tm.FullyHardened, tc.wantFull, tm.SSHAndFirewall, tc.wantSSHAnd)
			}
		})
	}
}
