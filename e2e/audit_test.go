//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/templates"
	"hardbake.dev/hardbake/verify"
)

// auditMode (HARDBAKE_E2E_AUDIT=1, `make audit`) runs Lynis inside every
// guest that boots a built-in profile, after the first boot's checks, and
// stops that scenario there: a full Lynis run takes minutes under TCG, so
// CI does not pay for it. The Debian package comes from the suite's
// mirror, so each release audits with its own Lynis.
func auditMode() bool { return os.Getenv("HARDBAKE_E2E_AUDIT") == "1" }

// lynisTargets are issue 15's hardening index goals.
var lynisTargets = map[string]int{"strict": 90, "baseline": 75}

var lynisIndexRe = regexp.MustCompile(`(?m)^hardening_index=(\d+)$`)

// lynisAudit installs lynis from the mirror, runs `lynis audit system`,
// keeps its report and log in the scenario directory (lynis-report.dat,
// lynis.log, lynis.txt) and records the hardening index against the
// profile's goal, and that the admin still logs in and sudoes afterwards.
func (g *guest) lynisAudit(ctx context.Context) {
	run := func(cmd string, timeout time.Duration) (string, error) {
		if g.client == nil {
			return "", fmt.Errorf("not logged in")
		}
		return verify.Exec(ctx, g.client, cmd, timeout)
	}
	if out, err := run("sudo -n apt-get install -y -q --no-install-recommends lynis 2>&1", 15*time.Minute); !g.res.check("audit: lynis installed from the mirror", wrapOut(err, out)) {
		return
	}
	if g.sc.fileIntegrity() && !g.res.check("audit: AIDE's first database built before the audit", g.waitAIDEDatabase(ctx, 30*time.Minute)) {
		return
	}
	start := time.Now()
	out, err := run("sudo -n lynis audit system --no-colors --quick 2>&1", 70*time.Minute)
	_ = os.WriteFile(filepath.Join(g.dir, "lynis.txt"), []byte(out), 0o644)
	if !g.res.check("audit: lynis audit system ran", wrapOut(err, lastLines(out, 5))) {
		return
	}
	g.s.lg.Printf("%s: lynis took %s", g.sc.Name, time.Since(start).Round(time.Second))
	report := g.save("lynis-report.dat", "sudo -n cat /var/log/lynis-report.dat")
	g.save("lynis.log", "sudo -n cat /var/log/lynis.log")
	m := lynisIndexRe.FindStringSubmatch(report)
	if m == nil {
		g.res.check("audit: lynis hardening index", fmt.Errorf("no hardening_index in lynis-report.dat"))
		return
	}
	index, _ := strconv.Atoi(m[1])
	var suggestions []string
	for _, l := range strings.Split(report, "\n") {
		if s, ok := strings.CutPrefix(l, "suggestion[]="); ok {
			suggestions = append(suggestions, s)
		}
	}
	_ = os.WriteFile(filepath.Join(g.dir, "lynis-suggestions.txt"), []byte(strings.Join(suggestions, "\n")+"\n"), 0o644)
	g.s.lg.Printf("%s: lynis hardening index %d (%s, goal %d), %d suggestions", g.sc.Name, index, g.sc.Profile, lynisTargets[g.sc.Profile], len(suggestions))
	g.res.check(fmt.Sprintf("audit: lynis hardening index %d, goal %d for %s", index, lynisTargets[g.sc.Profile], g.sc.Profile),
		boolErr(index >= lynisTargets[g.sc.Profile], fmt.Sprintf("index %d below %d (%d suggestions, lynis-suggestions.txt)", index, lynisTargets[g.sc.Profile], len(suggestions))))
	g.res.check("audit: the admin still logs in and sudoes after the audit", g.login(ctx, g.port, loginTimeout))
}

func wrapOut(err error, out string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", err, lastLines(out, 5))
}

// bootLimit bounds the wait for the first boot's end. Audit runs put up
// to four guests on two cores, which more than doubles a first boot.
func bootLimit() time.Duration {
	if auditMode() {
		return 35 * time.Minute
	}
	return bootTimeout
}

// fileIntegrity says whether the profile sc boots turns AIDE on.
func (sc scenario) fileIntegrity() bool {
	p := sc.builtinProfile()
	return p != nil && p.System.FileIntegrity
}

// packageIntegrity says whether the profile sc boots turns debsums' weekly
// check on.
func (sc scenario) packageIntegrity() bool {
	p := sc.builtinProfile()
	return p != nil && p.System.PackageIntegrity
}

// noCoreDumps: the scenario boots a built-in profile that turns core dumps
// off.
func (sc scenario) noCoreDumps() bool {
	p := sc.builtinProfile()
	return p != nil && !config.Bool(p.System.CoreDumps, true)
}

// hidesProcesses: the scenario boots a built-in profile that mounts /proc
// with hidepid.
func (sc scenario) hidesProcesses() bool {
	p := sc.builtinProfile()
	return p != nil && p.System.HideProcesses
}

// processesHidden: /proc is mounted with hidepid, so the admin cannot see
// PID 1 while root (through sudo) can.
func (g *guest) processesHidden() error {
	out, err := g.run("grep '^proc /proc ' /proc/mounts; test -e /proc/1 && echo admin-sees-pid1; sudo -n test -e /proc/1 && echo root-sees-pid1")
	if err != nil {
		return wrapOut(err, out)
	}
	if !strings.Contains(out, "hidepid=invisible") && !strings.Contains(out, "hidepid=2") {
		return fmt.Errorf("/proc mounted without hidepid: %q", strings.TrimSpace(out))
	}
	if strings.Contains(out, "admin-sees-pid1") || !strings.Contains(out, "root-sees-pid1") {
		return fmt.Errorf("want PID 1 hidden from the admin and visible to root: %q", strings.TrimSpace(out))
	}
	return nil
}

// builtinProfile is the built-in profile the scenario boots, nil if none.
func (sc scenario) builtinProfile() *config.Profile {
	if sc.Profile == "" {
		return nil
	}
	data, ok := templates.Profile(sc.Profile)
	if !ok {
		return nil
	}
	p, err := config.DecodeProfile(sc.Profile+".yaml", data)
	if err != nil {
		return nil
	}
	return p
}

// coreDumpsOff: no session can raise its core size limit, the admin's
// (an SSH login) nor root's (a PAM session through runuser, which applies
// pam_limits as a login does). pam_limits gives root no wildcard limit,
// and Debian 13's systemd gives root an unlimited hard one.
func (g *guest) coreDumpsOff() error {
	out, err := g.run("echo admin=$(ulimit -Hc) root=$(sudo -n runuser root -c 'ulimit -Hc')")
	if err != nil {
		return wrapOut(err, out)
	}
	if got := strings.TrimSpace(out); got != "admin=0 root=0" {
		return fmt.Errorf("hard core size limits %q, want admin=0 root=0", got)
	}
	return nil
}

// aideInstalled: AIDE runs with hardbake's configuration (aide parses it,
// as Lynis' FINT-4315 does), its init unit and daily timer are enabled,
// and the apt pin kept aide-common, and with it cron and exim4, away.
func (g *guest) aideInstalled() error {
	out, err := g.run("sudo -n aide --config=/etc/aide/aide.conf -D 2>&1 && sudo -n systemctl is-enabled hardbake-aide-init.service hardbake-aide-check.timer")
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 5))
	}
	out, _ = g.run("dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' aide-common exim4-daemon-light cron 2>/dev/null")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[1], "ii") {
			return fmt.Errorf("%s is installed", f[0])
		}
	}
	return nil
}

// debsumsCheck: the weekly debsums timer is enabled, and its unit, started
// now, passes: on a freshly hardened machine no package file differs from
// its checksum (a false alarm here would fail every machine's unit weekly).
func (g *guest) debsumsCheck(ctx context.Context) error {
	if out, err := g.run("sudo -n systemctl is-enabled hardbake-debsums-check.timer"); err != nil {
		return fmt.Errorf("timer: %w: %s", err, lastLines(out, 3))
	}
	start := time.Now()
	out, err := verify.Exec(ctx, g.client, "sudo -n systemctl start hardbake-debsums-check.service", 15*time.Minute)
	g.s.lg.Printf("%s: hardbake-debsums-check.service ran %s", g.sc.Name, time.Since(start).Round(time.Second))
	if err != nil {
		st, _ := g.run("sudo -n journalctl --no-pager -n 20 -u hardbake-debsums-check.service 2>&1")
		return fmt.Errorf("check unit: %w: %s\n%s", err, out, lastLines(st, 20))
	}
	return nil
}

// waitAIDEDatabase waits (bounded) for hardbake-aide-init.service to build
// the first database, so the audit sees the machine as it is once that is
// done, and logs how long the unit took.
func (g *guest) waitAIDEDatabase(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := g.run("sudo -n test -s /var/lib/aide/aide.db && sudo -n systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic hardbake-aide-init.service")
		if err == nil {
			var start, exit int64
			for _, l := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(l, "ExecMainStartTimestampMonotonic="); ok {
					start, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				}
				if v, ok := strings.CutPrefix(l, "ExecMainExitTimestampMonotonic="); ok {
					exit, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				}
			}
			g.s.lg.Printf("%s: AIDE database built by hardbake-aide-init.service in %s", g.sc.Name, (time.Duration(exit-start) * time.Microsecond).Round(time.Second))
			return nil
		}
		if time.Now().After(deadline) {
			st, _ := g.run("sudo -n systemctl status --no-pager hardbake-aide-init.service 2>&1")
			return fmt.Errorf("no AIDE database after %s: %s", limit, lastLines(st, 5))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(15 * time.Second):
		}
	}
}
