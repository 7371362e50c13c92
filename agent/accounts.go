package agent

import (
	"errors"
	"fmt"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// rootLocked reports whether root's password hash in /etc/shadow is locked
// ("!" prefix) or absent ("*").
func (r *run) rootLocked() (bool, error) {
	f, err := r.Root.dbEntry("/etc/shadow", "root")
	if err != nil {
		return false, err
	}
	return strings.HasPrefix(f[1], "!") || f[1] == "*", nil
}

func (r *run) lockRoot() (string, error) {
	locked, err := r.rootLocked()
	if err != nil {
		return plan.StatusFailed, err
	}
	if locked {
		return plan.StatusUnchanged, nil
	}
	if _, err := r.Runner.Run("usermod", "-L", "root"); err != nil {
		return plan.StatusFailed, fmt.Errorf("lock root password: %w", err)
	}
	return plan.StatusApplied, nil
}

func (r *run) checkRootLocked() (string, error) {
	locked, err := r.rootLocked()
	if err != nil {
		return plan.StatusFailed, err
	}
	if !locked {
		return plan.StatusFailed, errors.New("root has a usable password")
	}
	return plan.StatusUnchanged, nil
}

// checkAdmin proves the admin cloud-init created can log in with a key:
// the account exists and its authorized_keys has at least one key.
// The agent never writes the keys itself.
func (r *run) checkAdmin() (string, error) {
	name := r.plan.Accounts.Admin
	f, err := r.Root.dbEntry("/etc/passwd", name)
	if err != nil {
		return plan.StatusFailed, fmt.Errorf("admin user %q: %w", name, err)
	}
	if len(f) < 7 {
		return plan.StatusFailed, fmt.Errorf("admin user %q: malformed passwd entry", name)
	}
	keysPath := f[5] + "/.ssh/authorized_keys"
	data, err := r.Root.ReadFile(keysPath)
	if err != nil {
		return plan.StatusFailed, fmt.Errorf("admin user %q: %w", name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return r.ok(), nil
		}
	}
	return plan.StatusFailed, fmt.Errorf("admin user %q: %s has no key", name, keysPath)
}
