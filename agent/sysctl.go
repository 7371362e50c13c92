package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

func (r *run) applySysctl() (string, error) {
	s := r.plan.Sysctl
	changed, err := r.Root.Install(s.File)
	if err != nil {
		return plan.StatusFailed, err
	}
	if !changed {
		if err := r.sysctlExpect(); err == nil {
			return plan.StatusUnchanged, nil
		}
	}
	err = r.sysctlLoad(s.File.Path)
	if err == nil {
		err = r.sysctlExpect()
	}
	if err == nil {
		return plan.StatusApplied, nil
	}
	if !changed {
		return plan.StatusFailed, err
	}
	if rerr := r.Root.Restore(s.File.Path); rerr != nil {
		return plan.StatusFailed, errOr(err, "rollback: "+rerr.Error())
	}
	if r.Root.Exists(s.File.Path) {
		if rerr := r.sysctlLoad(s.File.Path); rerr != nil {
			return plan.StatusFailed, errOr(err, "rollback: "+rerr.Error())
		}
	}
	return plan.StatusRolledBack, err
}

func (r *run) sysctlLoad(p string) error {
	if _, err := r.Runner.Run("sysctl", "-p", r.Root.Path(p)); err != nil {
		return fmt.Errorf("sysctl -p %s: %w", p, err)
	}
	return nil
}

// sysctlExpect compares `sysctl -n` with the plan, whitespace-normalised
// (multi-value keys print tabs). One sysctl call reads every key (a process
// start costs ~40 ms under emulation, and there are dozens of keys); when it
// fails or prints an unexpected line count, each key is read alone so the
// error names the key.
func (r *run) sysctlExpect() error {
	keys := sortedKeys(r.plan.Sysctl.Expect)
	if len(keys) == 0 {
		return nil
	}
	out, err := r.Runner.Run("sysctl", append([]string{"-n", "--"}, keys...)...)
	values := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	var errs []error
	unread := map[string]bool{}
	if err != nil || len(values) != len(keys) {
		values = make([]string, len(keys))
		for i, k := range keys {
			// The error is the command line and sysctl's message: it names k.
			if values[i], err = runString(r.Runner, "sysctl", "-n", "--", k); err != nil {
				errs = append(errs, err)
				unread[k] = true
			}
		}
	}
	for i, k := range keys {
		if unread[k] {
			continue
		}
		got, want := strings.Join(strings.Fields(values[i]), " "), r.plan.Sysctl.Expect[k]
		if got != strings.Join(strings.Fields(want), " ") {
			errs = append(errs, fmt.Errorf("%s is %q, want %q", k, got, want))
		}
	}
	return errors.Join(errs...)
}

func (r *run) checkSysctl() (string, error) {
	if err := r.sysctlExpect(); err != nil {
		return plan.StatusFailed, err
	}
	return plan.StatusUnchanged, nil
}
