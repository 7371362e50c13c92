//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mirrorGuestAddr is where the guest finds the mirror (through guestfwd).
const mirrorGuestAddr = "10.0.2.100"

// vmConfig is one guest boot.
type vmConfig struct {
	Name  string
	Dir   string // work directory: overlay, console log, sockets
	Image *builtImage
	Seed  string // seed ISO (cidata); "" boots with no seed disk
	// Append is added to the kernel command line (ds=nocloud-net;s=…).
	Append string
	// Service is the 127.0.0.1:PORT the guest's serviceGuestAddr is relayed to.
	Service string
	Relay   string // fwdrelay binary
	Mirror  string // 127.0.0.1:PORT the guest's 10.0.2.100:80 is relayed to
	// GuestPorts are TCP ports of the guest forwarded from 127.0.0.1.
	GuestPorts []int
	Log        *logger
}

// consoleLine is one serial console line with its arrival time on the host.
// vm is a running QEMU guest. Stop it with Stop (registered as cleanup).
type vm struct {
	cfg     vmConfig
	cmd     *exec.Cmd
	Start   time.Time
	Ports   map[int]int // guest port -> host port on 127.0.0.1
	qgaPath string

	mu      sync.Mutex
	lines   []consoleLine
	changed chan struct{}
	exited  chan struct{}
	exitErr error
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startVM creates a qcow2 overlay on the image and boots it.
func startVM(ctx context.Context, cfg vmConfig) (*vm, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm dir: %w", err)
	}
	overlay := filepath.Join(cfg.Dir, "overlay.qcow2")
	if _, err := os.Stat(overlay); errors.Is(err, os.ErrNotExist) {
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", cfg.Image.Disk, "-F", "raw", overlay).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("qemu-img create overlay: %w: %s", err, out)
		}
	}
	v := &vm{cfg: cfg, Ports: map[int]int{}, qgaPath: filepath.Join(cfg.Dir, "qga.sock"), changed: make(chan struct{}), exited: make(chan struct{})}
	netdev := "user,id=n0,restrict=on"
	for _, gp := range cfg.GuestPorts {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		v.Ports[gp] = hp
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, gp)
	}
	if cfg.Mirror != "" {
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:80-cmd:%s %s", mirrorGuestAddr, cfg.Relay, cfg.Mirror)
	}
	if cfg.Service != "" {
		netdev += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s %s", serviceGuestAddr, cfg.Relay, cfg.Service)
	}
	cmdline := "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=1"
	if cfg.Append != "" {
		cmdline += " " + cfg.Append
	}
	_ = os.Remove(v.qgaPath)
	args := []string{
		"-accel", "tcg", "-m", "1024", "-smp", "2",
		"-nodefaults", "-display", "none", "-no-user-config",
		"-kernel", cfg.Image.Kernel, "-initrd", cfg.Image.Initrd,
		"-append", cmdline,
		"-drive", "file=" + overlay + ",if=virtio,format=qcow2,cache=unsafe",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=qga0,path=" + v.qgaPath + ",server=on,wait=off",
		"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
		"-device", "virtio-rng-pci",
	}
	if cfg.Seed != "" {
		args = append(args, "-drive", "file="+cfg.Seed+",if=ide,media=cdrom,readonly=on,format=raw")
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("qemu stdout: %w", err)
	}
	stderrFile, err := os.Create(filepath.Join(cfg.Dir, "qemu.stderr"))
	if err != nil {
		return nil, fmt.Errorf("qemu stderr: %w", err)
	}
	cmd.Stderr = stderrFile
	consoleFile, err := os.OpenFile(filepath.Join(cfg.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	v.Start = time.Now()
	if err := cmd.Start(); err != nil {
		consoleFile.Close()
		stderrFile.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	v.cmd = cmd
	cfg.Log.Printf("%s: qemu pid %d started (%s)", cfg.Name, cmd.Process.Pid, cfg.Image.Name)
	go v.readConsole(stdout, consoleFile)
	go func() {
		err := cmd.Wait()
		stderrFile.Close()
		v.mu.Lock()
		v.exitErr = err
		v.mu.Unlock()
		close(v.exited)
	}()
	return v, nil
}

func (v *vm) readConsole(r io.Reader, logf *os.File) {
	defer logf.Close()
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			now := time.Now()
			fmt.Fprintf(logf, "[%8.3f] %s", now.Sub(v.Start).Seconds(), strings.TrimRight(line, "\r\n")+"\n")
			text := strings.TrimRight(strings.ReplaceAll(line, "\r", ""), "\n")
			v.mu.Lock()
			v.lines = append(v.lines, consoleLine{At: now, Text: text})
			close(v.changed)
			v.changed = make(chan struct{})
			v.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Mark returns the current console position, for waits that must only
// match lines printed later (e.g. after a reboot).
func (v *vm) Mark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.lines)
}

// Lines returns a copy of the console lines so far.
func (v *vm) Lines() []consoleLine {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]consoleLine(nil), v.lines...)
}

// WaitConsole waits until a console line at index >= from matches re and
// returns it.
func (v *vm) WaitConsole(ctx context.Context, from int, re *regexp.Regexp, timeout time.Duration) (consoleLine, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		for i := from; i < len(v.lines); i++ {
			if re.MatchString(v.lines[i].Text) {
				l := v.lines[i]
				v.mu.Unlock()
				return l, nil
			}
		}
		from = len(v.lines)
		ch := v.changed
		v.mu.Unlock()
		select {
		case <-ch:
		case <-v.exited:
			return consoleLine{}, fmt.Errorf("%s: qemu exited while waiting for %q: %v (see %s)", v.cfg.Name, re, v.exitErr, v.cfg.Dir)
		case <-deadline.C:
			return consoleLine{}, fmt.Errorf("%s: no console line matching %q within %s (see %s/console.log)", v.cfg.Name, re, timeout, v.cfg.Dir)
		case <-ctx.Done():
			return consoleLine{}, fmt.Errorf("%s: waiting for %q: %w", v.cfg.Name, re, ctx.Err())
		}
	}
}

// Stop ends QEMU by its own PID: SIGTERM, then SIGKILL after a timeout.
func (v *vm) Stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	select {
	case <-v.exited:
		return
	default:
	}
	pid := v.cmd.Process.Pid
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		_ = v.cmd.Process.Kill()
		select {
		case <-v.exited:
		case <-time.After(15 * time.Second):
			v.cfg.Log.Printf("%s: qemu pid %d did not exit after SIGKILL", v.cfg.Name, pid)
			return
		}
	}
	v.cfg.Log.Printf("%s: qemu pid %d stopped", v.cfg.Name, pid)
}

// Exited reports whether QEMU has exited.
func (v *vm) Exited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// Addr is HostAddr for package verify: false for a port not forwarded.
func (v *vm) Addr(guestPort int) (string, bool) {
	hp, ok := v.Ports[guestPort]
	if !ok {
		return "", false
	}
	return fmt.Sprintf("127.0.0.1:%d", hp), true
}

// HostAddr is 127.0.0.1:<host port> for a forwarded guest port.
func (v *vm) HostAddr(guestPort int) string {
	hp, ok := v.Ports[guestPort]
	if !ok {
		panic(fmt.Sprintf("guest port %d is not forwarded", guestPort))
	}
	return fmt.Sprintf("127.0.0.1:%d", hp)
}

// qgaExec runs a program in the guest through qemu-guest-agent
// (guest-exec), for when SSH is closed to the host. It returns the exit
// code and combined stdout+stderr.
func (v *vm) qgaExec(ctx context.Context, timeout time.Duration, path string, args ...string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.qgaPath)
	if err != nil {
		return -1, "", fmt.Errorf("qga dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	dec := json.NewDecoder(conn)
	call := func(cmd string, arguments any, out any) error {
		req := map[string]any{"execute": cmd}
		if arguments != nil {
			req["arguments"] = arguments
		}
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("qga %s: %w", cmd, err)
		}
		if _, err := conn.Write(b); err != nil {
			return fmt.Errorf("qga %s: write: %w", cmd, err)
		}
		for {
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Class string `json:"class"`
					Desc  string `json:"desc"`
				} `json:"error"`
			}
			if err := dec.Decode(&resp); err != nil {
				return fmt.Errorf("qga %s: read: %w", cmd, err)
			}
			if resp.Error != nil {
				return fmt.Errorf("qga %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
			}
			if resp.Return == nil {
				continue
			}
			if out != nil {
				return json.Unmarshal(resp.Return, out)
			}
			return nil
		}
	}
	// guest-sync flushes anything a previous client left in the channel.
	syncID := time.Now().UnixNano() & 0x7fffffff
	for {
		var got int64
		if err := call("guest-sync", map[string]any{"id": syncID}, &got); err != nil {
			return -1, "", err
		}
		if got == syncID {
			break
		}
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := call("guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true}, &started); err != nil {
		return -1, "", err
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
			ErrData  string `json:"err-data"`
		}
		if err := call("guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return -1, "", err
		}
		if st.Exited {
			var out bytes.Buffer
			for _, s := range []string{st.OutData, st.ErrData} {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return -1, "", fmt.Errorf("qga output: %w", err)
				}
				out.Write(b)
			}
			return st.ExitCode, out.String(), nil
		}
		select {
		case <-ctx.Done():
			return -1, "", fmt.Errorf("qga exec %s: %w", path, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}
