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
// (multi-value keys print tabs).
func (r *run) sysctlExpect() error {
	var errs []error
	for _, k := range sortedKeys(r.plan.Sysctl.Expect) {
		got, err := runString(r.Runner, "sysctl", "-n", k)
		if err != nil {
			errs = append(errs, fmt.Errorf("sysctl -n %s: %w", k, err))
			continue
		}
		want := r.plan.Sysctl.Expect[k]
		if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(want), " ") {
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
