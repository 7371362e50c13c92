package agent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hardbake.dev/hardbake/plan"
)

// ProcUptime reads seconds since boot from /proc/uptime (0 when unreadable:
// a missing timestamp must not fail a stage).
func ProcUptime() float64 {
	data, err := sysReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// DialBanner connects to 127.0.0.1:port and returns the first line the
// server sends. It uses raw sockets: package net would add ~570 KiB to the
// static agent for one loopback dial.
func DialBanner(port int, timeout time.Duration) (string, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	// SO_SNDTIMEO bounds connect() on Linux, SO_RCVTIMEO the read.
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv); err != nil {
		return "", fmt.Errorf("setsockopt: %w", err)
	}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return "", fmt.Errorf("setsockopt: %w", err)
	}
	addr := &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := syscall.Connect(fd, addr); err != nil {
		return "", fmt.Errorf("connect 127.0.0.1:%d: %w", port, err)
	}
	var line []byte
	buf := make([]byte, 256)
	for len(line) < 255 {
		n, err := syscall.Read(fd, buf)
		if n > 0 {
			line = append(line, buf[:n]...)
			if i := strings.IndexByte(string(line), '\n'); i >= 0 {
				return strings.TrimRight(string(line[:i]), "\r"), nil
			}
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			if len(line) > 0 {
				return string(line), nil
			}
			return "", fmt.Errorf("read banner on 127.0.0.1:%d: connection closed (%v)", port, err)
		}
	}
	return string(line), nil
}

// hostKeys fingerprints /etc/ssh/ssh_host_*_key.pub: the key type is the
// file's first field, the fingerprint what `ssh-keygen -l -E sha256` prints
// for it. A key that cannot be read or fingerprinted is left out: the report
// is evidence, not a step that can fail.
func (a *Agent) hostKeys() []plan.HostKey {
	keys := []plan.HostKey{}
	for _, m := range sysGlob(a.Root.Path("/etc/ssh"), "ssh_host_", "_key.pub") {
		data, err := sysReadFile(m)
		if err != nil {
			continue
		}
		typ := strings.Fields(string(data))
		if len(typ) < 2 {
			continue
		}
		out, err := a.Runner.Run("ssh-keygen", "-l", "-E", "sha256", "-f", m)
		if err != nil {
			continue
		}
		if fp, ok := ParseKeygenFingerprint(string(out)); ok {
			keys = append(keys, plan.HostKey{Type: typ[0], Fingerprint: fp})
		}
	}
	return keys
}

// ParseKeygenFingerprint returns the "SHA256:…" field of one line of
// `ssh-keygen -l -E sha256` output: "BITS SHA256:… comment (TYPE)".
func ParseKeygenFingerprint(out string) (string, bool) {
	line, _, _ := strings.Cut(out, "\n")
	f := strings.Fields(line)
	if len(f) < 3 || !strings.HasPrefix(f[1], "SHA256:") || len(f[1]) == len("SHA256:") {
		return "", false
	}
	if bits, err := strconv.Atoi(f[0]); err != nil || bits <= 0 {
		return "", false
	}
	return f[1], true
}

// bootID is the kernel's random id of this boot ("" when unreadable).
func (r *run) bootID() string {
	data, err := r.Root.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// earlyStepUptime returns when the named early step finished with the plan
// in place (applied or unchanged) in this boot: from this run, or from the
// state the early stage left if it ran in the same boot.
func (r *run) earlyStepUptime(name string) (float64, bool) {
	find := func(steps []plan.Step) (float64, bool) {
		for _, s := range steps {
			if s.Stage == StageEarly && s.Name == name && (s.Status == plan.StatusApplied || s.Status == plan.StatusUnchanged) {
				return s.Uptime, true
			}
		}
		return 0, false
	}
	if t, ok := find(r.steps); ok {
		return t, true
	}
	boot := r.bootID()
	if r.st.Early.Digest != r.digest || boot == "" || r.st.Early.BootID != boot {
		return 0, false
	}
	return find(r.st.Early.Steps)
}
