package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// checkUpdates proves unattended-upgrades will run: package installed, apt
// periodic setting on, and the timer that triggers it enabled.
func (r *run) checkUpdates() (string, error) {
	rep := &r.rep.Updates
	status, err := runString(r.Runner, "dpkg-query", "-W", "-f=${Status}", "unattended-upgrades")
	rep.Installed = err == nil && status == "install ok installed"
	if !rep.Installed {
		rep.State = "missing"
		return plan.StatusWaiting, errors.New("unattended-upgrades is not installed")
	}
	dump, err := runString(r.Runner, "apt-config", "dump")
	if err != nil {
		rep.State = "failed"
		return plan.StatusFailed, fmt.Errorf("apt-config dump: %w", err)
	}
	rep.Periodic = AptConfigValue(dump, "APT::Periodic::Unattended-Upgrade")
	rep.TimerEnabled = r.unitState("is-enabled", "apt-daily-upgrade.timer") == "enabled"
	var errs []error
	if rep.Periodic != "1" {
		errs = append(errs, fmt.Errorf("APT::Periodic::Unattended-Upgrade is %q, want \"1\"", rep.Periodic))
	}
	if !rep.TimerEnabled {
		errs = append(errs, errors.New("apt-daily-upgrade.timer is not enabled"))
	}
	if err := errors.Join(errs...); err != nil {
		rep.State = "failed"
		return plan.StatusFailed, err
	}
	rep.State = "ok"
	return r.ok(), nil
}

// AptConfigValue finds `KEY "value";` in `apt-config dump` output; the
// last occurrence wins, as in apt.
func AptConfigValue(dump, key string) string {
	val := ""
	for _, line := range strings.Split(dump, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			val = strings.Trim(strings.TrimSuffix(v, ";"), `"`)
		}
	}
	return val
}
