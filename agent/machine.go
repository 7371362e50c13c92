package agent

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	if err != nil {
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

// hostKeys fingerprints /etc/ssh/ssh_host_*_key.pub the way
// `ssh-keygen -lf` does: SHA256 over the decoded key blob, base64 without
// padding.
func (a *Agent) hostKeys() []HostKey {
	keys := []HostKey{}
	for _, m := range sysGlob(a.Root.Path("/etc/ssh"), "ssh_host_", "_key.pub") {
		data, err := sysReadFile(m)
		if err != nil {
			continue
		}
		if k, ok := Fingerprint(string(data)); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// Fingerprint parses one OpenSSH public key line ("type base64 [comment]").
func Fingerprint(line string) (HostKey, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return HostKey{}, false
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return HostKey{}, false
	}
	sum := sum256(blob)
	return HostKey{Type: f[0], Fingerprint: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])}, true
}
