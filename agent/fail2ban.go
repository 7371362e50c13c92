package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// fail2ban proves every planned jail runs on the planned port. With
// mayRestart (late stage) it validates and restarts fail2ban the first time
// it sees this plan, or when the running daemon does not match.
func (r *run) fail2ban(mayRestart bool) (string, error) {
	rep := &r.rep.Fail2ban
	if !has(r.Runner, "fail2ban-client") {
		rep.State = "missing"
		return plan.StatusWaiting, errors.New("fail2ban is not installed")
	}
	firstRun := r.st.Late.Digest != r.digest
	if !mayRestart || !firstRun {
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

// verifyJails asks the running fail2ban for each jail's status and the
// port its first action bans on.
func (r *run) verifyJails() error {
	rep := &r.rep.Fail2ban
	rep.Jails = map[string]string{}
	var errs []error
	for _, jail := range sortedKeys(r.plan.Fail2ban.Jails) {
		want := r.plan.Fail2ban.Jails[jail]
		if _, err := r.Runner.Run("fail2ban-client", "status", jail); err != nil {
			errs = append(errs, fmt.Errorf("jail %s: %w", jail, err))
			continue
		}
		port, err := r.jailPort(jail)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Jails[jail] = port
		if normPorts(port) != normPorts(want) {
			errs = append(errs, fmt.Errorf("jail %s protects port %q, want %q", jail, port, want))
		}
	}
	return errors.Join(errs...)
}

func (r *run) jailPort(jail string) (string, error) {
	out, err := runString(r.Runner, "fail2ban-client", "get", jail, "actions")
	if err != nil {
		return "", fmt.Errorf("jail %s actions: %w", jail, err)
	}
	actions := ParseF2BActions(out)
	if len(actions) == 0 {
		return "", fmt.Errorf("jail %s has no actions", jail)
	}
	port, err := runString(r.Runner, "fail2ban-client", "get", jail, "action", actions[0], "port")
	if err != nil {
		return "", fmt.Errorf("jail %s action %s port: %w", jail, actions[0], err)
	}
	return port, nil
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
