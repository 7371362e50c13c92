package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// fail2ban proves every planned jail runs on the planned port. With
// mayRestart (late stage) it validates and restarts fail2ban the first time
// it sees this plan, unless the daemon already started from the planned
// jail.local, or when the running daemon does not match.
func (r *run) fail2ban(mayRestart bool) (string, error) {
	rep := &r.rep.Fail2ban
	if !has(r.Runner, "fail2ban-client") {
		rep.State = "missing"
		return plan.StatusWaiting, errors.New("fail2ban is not installed")
	}
	firstRun := r.st.Late.Digest != r.digest
	if !mayRestart || !firstRun || r.fail2banStartedAfterConfig() {
		err := r.verifyJails()
		if err == nil {
			rep.State = "ok"
			if r.stage == StageLate && !firstRun {
				return plan.StatusUnchanged, nil
			}
			return r.ok(), nil
		}
		if !mayRestart {
			rep.State = "failed"
			return plan.StatusFailed, err
		}
	}
	if _, err := r.Runner.Run("fail2ban-client", "-t"); err != nil {
		rep.State = "failed"
		err = fmt.Errorf("fail2ban config test: %w", err)
		jl := r.plan.Fail2ban.JailLocal.Path
		if r.Root.Same(r.plan.Fail2ban.JailLocal) && r.Root.HasBackup(jl) {
			if rerr := r.Root.Restore(jl); rerr != nil {
				return plan.StatusFailed, errOr(err, "rollback: "+rerr.Error())
			}
			r.Runner.Run("systemctl", "restart", "fail2ban.service")
			return plan.StatusRolledBack, errOr(err, "previous jail.local restored")
		}
		return plan.StatusFailed, err
	}
	if _, err := r.Runner.Run("systemctl", "restart", "fail2ban.service"); err != nil {
		rep.State = "failed"
		return plan.StatusFailed, fmt.Errorf("restart fail2ban: %w", err)
	}
	err := r.poll(func() error {
		_, err := r.Runner.Run("fail2ban-client", "ping")
		return err
	})
	if err == nil {
		err = r.verifyJails()
	}
	if err != nil {
		rep.State = "failed"
		return plan.StatusFailed, err
	}
	rep.State = "ok"
	return plan.StatusApplied, nil
}

// fail2banStartedAfterConfig reports whether the running fail2ban started
// after this boot's early stage put the planned jail.local in place: on a
// first boot the package's postinst starts it from that file, so a restart
// would prove nothing new and costs seconds of Python start-up. Anything
// uncertain (another boot, no start time, jail.local changed since) says no.
//
// Step uptimes come from /proc/uptime (CLOCK_BOOTTIME), systemd's start
// stamp from CLOCK_MONOTONIC, which never runs ahead of it: a start stamp
// later than the write is later in fact.
func (r *run) fail2banStartedAfterConfig() bool {
	written, ok := r.earlyStepUptime("fail2ban-config")
	if !ok || !r.Root.Same(r.plan.Fail2ban.JailLocal) {
		return false
	}
	out, err := r.Runner.Run("systemctl", "show", "--property=ActiveState,ExecMainStartTimestampMonotonic", "fail2ban.service")
	if err != nil {
		return false
	}
	props := ParseProperties(string(out))
	startUS, err := strconv.ParseUint(props["ExecMainStartTimestampMonotonic"], 10, 64)
	return err == nil && props["ActiveState"] == "active" && startUS > 0 && float64(startUS)/1e6 > written
}

// ParseProperties reads `systemctl show` output: one KEY=VALUE per line.
func ParseProperties(out string) map[string]string {
	props := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = strings.TrimSpace(v)
		}
	}
	return props
}

// verifyJails asks the running fail2ban how each planned jail bans (`get
// JAIL actions` fails for a jail that does not run, so it doubles as the
// status check). A jail planned with a port must ban on exactly that port;
// one planned with none (recidive) must ban on all ports, which its action
// says, by name or by its type parameter: the port property of an all-ports
// action is whatever the [DEFAULT] section left there ("0:65535" in the
// jail.conf of fail2ban 1.0.2 and 1.1.0 alike) and means nothing.
func (r *run) verifyJails() error {
	rep := &r.rep.Fail2ban
	rep.Jails = map[string]string{}
	var errs []error
	for _, jail := range sortedKeys(r.plan.Fail2ban.Jails) {
		want := r.plan.Fail2ban.Jails[jail]
		action, err := r.jailAction(jail)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want == "" {
			rep.Jails[jail] = "all ports (" + action + ")"
			if !r.bansAllPorts(jail, action) {
				errs = append(errs, fmt.Errorf("jail %s bans with %s, want an all-ports action", jail, action))
			}
			continue
		}
		port, err := f2bGet(r.Runner, "get", jail, "action", action, "port")
		if err != nil {
			errs = append(errs, fmt.Errorf("jail %s action %s port: %w", jail, action, err))
			continue
		}
		rep.Jails[jail] = port
		if normPorts(port) != normPorts(want) {
			errs = append(errs, fmt.Errorf("jail %s protects port %q, want %q", jail, port, want))
		}
	}
	return errors.Join(errs...)
}

// bansAllPorts reports whether a jail's action bans on every port. The
// aliases say so by name (nftables-allports, iptables-allports: what the
// plan configures). Debian 13's own default (jail.d/defaults-debian.conf:
// banaction_allports = nftables[type=allports]) is listed by `get JAIL
// actions` as plain "nftables", without its parameters; only then is the
// type asked for, which fail2ban answers for an action given type= as a
// parameter and refuses (exit 255, "no attribute 'type'") for the aliases,
// whose type lives in their own file.
func (r *run) bansAllPorts(jail, action string) bool {
	if IsAllPortsAction(action) {
		return true
	}
	typ, err := f2bGet(r.Runner, "get", jail, "action", action, "type")
	return err == nil && typ == "allports"
}

// jailAction is the first action of a running jail.
func (r *run) jailAction(jail string) (string, error) {
	out, err := f2bGet(r.Runner, "get", jail, "actions")
	if err != nil {
		return "", fmt.Errorf("jail %s actions: %w", jail, err)
	}
	actions := ParseF2BActions(out)
	if len(actions) == 0 {
		return "", fmt.Errorf("jail %s has no actions", jail)
	}
	return actions[0], nil
}

// f2bGet runs fail2ban-client and returns its trimmed stdout. A refused
// request (exit 255) says why on stdout ("Sorry but the jail 'recidive'
// does not exist"); stderr has only a time-stamped "ERROR NOK: ('recidive',)"
// log line, so the error carries stdout's reason instead.
func f2bGet(rn Runner, args ...string) (string, error) {
	out, err := runString(rn, "fail2ban-client", args...)
	var ee *ExitError
	if err != nil && out != "" && errors.As(err, &ee) {
		reason, _, _ := strings.Cut(out, "\n")
		return "", fmt.Errorf("%s: exit status %d: %s", ee.Cmd, ee.Code, reason)
	}
	return out, err
}

// IsAllPortsAction reports whether a fail2ban action's name says it bans
// on every port: the nftables-allports and iptables-allports aliases
// (type=allports in their own files) that fail2ban 1.0 and 1.1 both ship.
func IsAllPortsAction(name string) bool {
	return strings.HasSuffix(name, "-allports")
}

// ParseF2BActions reads `fail2ban-client get JAIL actions`:
// "The jail sshd has the following actions:\nA, B".
func ParseF2BActions(out string) []string {
	_, list, ok := strings.Cut(out, ":\n")
	if !ok {
		return nil
	}
	var actions []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			actions = append(actions, a)
		}
	}
	return actions
}

// normPorts makes "50022, 2222" and "2222,50022" compare equal.
func normPorts(s string) string {
	f := strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' })
	sortStrings(f)
	return strings.Join(f, ",")
}
