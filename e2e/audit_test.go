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
