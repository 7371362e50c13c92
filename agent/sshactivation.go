package agent

import (
	"fmt"
	"strings"
)

// How sshd is started on this machine; detected, never assumed.
const (
	actService   = "service"          // ssh.service (Debian default)
	actSocket    = "socket"           // ssh.socket with ListenStream= (Ubuntu 22.10–23.10, Debian with the socket enabled)
	actGenerated = "socket-generated" // ssh.socket generated from sshd_config (Ubuntu 24.04+)
)

// generators are where sshd-socket-generator lives on usr-merged and older systems.
var generators = []string{
	"/usr/lib/systemd/system-generators/sshd-socket-generator",
	"/lib/systemd/system-generators/sshd-socket-generator",
}

func (r *run) unitState(verb, unit string) string {
	out, _ := runString(r.Runner, "systemctl", verb, unit)
	return out
}

func (r *run) activation() string {
	enabled := strings.HasPrefix(r.unitState("is-enabled", "ssh.socket"), "enabled")
	if !enabled && r.unitState("is-active", "ssh.socket") != "active" {
		return actService
	}
	for _, g := range generators {
		if r.Root.Exists(g) {
			return actGenerated
		}
	}
	return actSocket
}

// restartSSH makes the running sshd pick up the files. It reports whether
// anything was restarted: at first boot ssh.service has not started yet
// (it is ordered after cloud-init.service, so starting it from here would
// deadlock) and simply starts later with the new config.
func (r *run) restartSSH(mode string) (bool, error) {
	systemctl := func(args ...string) error {
		_, err := r.Runner.Run("systemctl", args...)
		return err
	}
	if mode == actService {
		// At the early stage sshd has not started yet, and starting it from
		// inside cloud-init.service (ordered Before=ssh.service) would
		// deadlock: it starts with the new files by itself. Later stages
		// (re)start it even when it is down, e.g. after it failed to bind
		// the new port, so a rollback really brings SSH back.
		if r.stage == StageEarly && r.unitState("is-active", "ssh.service") != "active" {
			return false, nil
		}
		_ = systemctl("reset-failed", "ssh.service") // clear a start limit hit by the failed start
		if err := systemctl("restart", "ssh.service"); err != nil {
			return true, fmt.Errorf("restart ssh.service: %w", err)
		}
		return true, nil
	}
	// Socket: the listening port lives in the socket unit (a drop-in, or
	// generated from sshd_config), so systemd must re-read units first.
	if err := systemctl("daemon-reload"); err != nil {
		return true, fmt.Errorf("daemon-reload: %w", err)
	}
	// Socket units come after sysinit.target, and cloud-init.service is
	// ordered Before=sysinit.target: at the early stage ssh.socket has not
	// started, and a restart job would wait for cloud-init — which waits for
	// us. Measured on Debian 12: "Listening on ssh.socket" only after the
	// init stage. The socket then starts with the new port by itself.
	if r.stage == StageEarly && r.unitState("is-active", "ssh.socket") != "active" {
		return false, nil
	}
	if err := systemctl("restart", "ssh.socket"); err != nil {
		return true, fmt.Errorf("restart ssh.socket: %w", err)
	}
	if r.unitState("is-active", "ssh.service") == "active" {
		if err := systemctl("restart", "ssh.service"); err != nil {
			return true, fmt.Errorf("restart ssh.service: %w", err)
		}
	}
	return true, nil
}

// waitBanner polls until sshd answers an SSH identification line on port.
func (r *run) waitBanner(port int) (string, error) {
	var banner string
	err := r.poll(func() error {
		b, err := r.Banner(port, 3e9)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(b, "SSH-") {
			return fmt.Errorf("127.0.0.1:%d answers %q, not an SSH banner", port, b)
		}
		banner = b
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("no SSH banner on port %d: %w", port, err)
	}
	return banner, nil
}

// port22Answers reports whether an SSH server still answers on 22.
func (r *run) port22Answers() bool {
	b, err := r.Banner(22, 2e9)
	return err == nil && strings.HasPrefix(b, "SSH-")
}
