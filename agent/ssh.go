package agent

import (
	"errors"
	"fmt"
	"strconv"

	"hardbake.dev/hardbake/plan"
)

// sshFiles are the plan files that configure sshd under the given activation.
func (r *run) sshFiles(mode string) ([]plan.File, error) {
	files := []plan.File{r.plan.SSH.DropIn}
	if mode == actSocket {
		if r.plan.SSH.SocketDropIn.Path == "" {
			return nil, errors.New("ssh.socket uses ListenStream= but the plan has no socket_drop_in")
		}
		files = append(files, r.plan.SSH.SocketDropIn)
	}
	return files, nil
}

// applySSH writes the sshd drop-in (and socket override), validating before
// and after the switch, and rolls back on any failure.
func (r *run) applySSH() (string, error) {
	mode := r.activation()
	r.rep.SSH.Activation = mode
	files, err := r.sshFiles(mode)
	if err != nil {
		return plan.StatusFailed, err
	}
	hk, err := r.sshdArgs()
	if err != nil {
		return plan.StatusFailed, err
	}
	before, err := r.effectiveSSH()
	if err != nil {
		return plan.StatusFailed, fmt.Errorf("current sshd config is invalid, not touching it: %w", err)
	}
	if allSame(r.Root, files) {
		if err := checkExpect(before, r.plan.SSH.Expect); err != nil {
			return plan.StatusFailed, err
		}
		return plan.StatusUnchanged, nil
	}
	oldPort := firstPort(before)
	if !r.Root.Same(files[0]) {
		if err := r.prevalidate(files[0], hk); err != nil {
			return plan.StatusFailed, err
		}
	}
	var changed []string
	undo := func(cause error) (string, error) {
		for _, p := range changed {
			if err := r.Root.Restore(p); err != nil {
				return plan.StatusFailed, errOr(cause, "rollback: "+err.Error())
			}
		}
		return plan.StatusRolledBack, cause
	}
	for _, f := range files {
		c, err := r.Root.Install(f)
		if err != nil {
			return undo(err)
		}
		if c {
			changed = append(changed, f.Path)
		}
	}
	r.st.OldSSHPort = oldPort
	// sshd -T validates like sshd -t and also prints what to compare.
	after, err := r.effectiveSSH()
	if err == nil {
		err = checkExpect(after, r.plan.SSH.Expect)
	}
	if err != nil {
		return undo(err)
	}
	restarted, err := r.restartSSH(mode)
	if err == nil && restarted {
		r.rep.SSH.Banner, err = r.waitBanner(r.plan.SSH.Port)
	}
	if err != nil {
		return r.rollbackSSH(mode, changed, oldPort, err)
	}
	return plan.StatusApplied, nil
}

func allSame(root Root, files []plan.File) bool {
	for _, f := range files {
		if !root.Same(f) {
			return false
		}
	}
	return true
}

// rollbackSSH restores the previous files, restarts and proves the old port
// answers again. The firewall follows if it would now block that port.
func (r *run) rollbackSSH(mode string, changed []string, oldPort int, cause error) (string, error) {
	for _, p := range changed {
		if err := r.Root.Restore(p); err != nil {
			return plan.StatusFailed, errOr(cause, "rollback: "+err.Error())
		}
	}
	r.rep.SSH.Banner = ""
	restarted, err := r.restartSSH(mode)
	if err == nil && restarted {
		r.rep.SSH.Banner, err = r.waitBanner(oldPort)
	}
	r.firewallFollowSSH(oldPort)
	if err != nil {
		return plan.StatusFailed, errOr(cause, "rollback failed: "+err.Error())
	}
	return plan.StatusRolledBack, errOr(cause, "rolled back to port "+strconv.Itoa(oldPort))
}

// verifySSH is the late stage's proof: sshd answers on the new port and
// nothing answers on 22 any more. A silent new port means rollback.
func (r *run) verifySSH() (string, error) {
	mode := r.activation()
	r.rep.SSH.Activation = mode
	port := r.plan.SSH.Port
	banner, err := r.waitBanner(port)
	if err != nil {
		files, ferr := r.sshFiles(mode)
		if ferr != nil {
			return plan.StatusFailed, errOr(err, ferr.Error())
		}
		var ours []string
		for _, f := range files {
			if r.Root.Same(f) && r.Root.HasBackup(f.Path) {
				ours = append(ours, f.Path)
			}
		}
		oldPort := r.st.OldSSHPort
		if oldPort == 0 {
			oldPort = 22
		}
		if len(ours) == 0 {
			return plan.StatusFailed, err
		}
		return r.rollbackSSH(mode, ours, oldPort, err)
	}
	r.rep.SSH.Banner = banner
	if port != 22 && r.port22Answers() {
		r.rep.SSH.Port22Open = true
		return plan.StatusFailed, fmt.Errorf("sshd answers on port %d, but port 22 still answers too", port)
	}
	return r.ok(), nil
}

// checkSSH re-proves the effective config and the listening port.
func (r *run) checkSSH() (string, error) {
	eff, err := r.effectiveSSH()
	if err != nil {
		return plan.StatusFailed, err
	}
	if err := checkExpect(eff, r.plan.SSH.Expect); err != nil {
		return plan.StatusFailed, err
	}
	return r.verifySSHReadOnly()
}

func (r *run) verifySSHReadOnly() (string, error) {
	port := r.plan.SSH.Port
	banner, err := r.waitBanner(port)
	if err != nil {
		return plan.StatusFailed, err
	}
	r.rep.SSH.Banner = banner
	if port != 22 && r.port22Answers() {
		r.rep.SSH.Port22Open = true
		return plan.StatusFailed, fmt.Errorf("port 22 still answers SSH")
	}
	return plan.StatusUnchanged, nil
}

// restoreSSHAccess runs when the admin cannot log in: the sshd drop-in
// turned root and password login off on the promise that the admin gets
// in, so it is rolled back (sshd restarted on its old port, the firewall
// following) and sshd is again as cloud-init configured it.
func (r *run) restoreSSHAccess() (string, error) {
	cause := errors.New("the admin cannot log in, so sshd goes back to the configuration it had before hardbake (root and password login as cloud-init left them)")
	mode := r.activation()
	files, err := r.sshFiles(mode)
	if err != nil {
		return plan.StatusFailed, errOr(cause, err.Error())
	}
	var ours []string
	for _, f := range files {
		if r.Root.Same(f) && r.Root.HasBackup(f.Path) {
			ours = append(ours, f.Path)
		}
	}
	if len(ours) == 0 {
		return plan.StatusFailed, errOr(cause, "but no file hardbake wrote is in place to roll back")
	}
	oldPort := r.st.OldSSHPort
	if oldPort == 0 {
		oldPort = 22
	}
	return r.rollbackSSH(mode, ours, oldPort, cause)
}
