// Package vmboot boots a disk image under QEMU the way `hardbake verify
// image` needs it: a throwaway qcow2 overlay (the image is never written),
// user networking with host forwards on 127.0.0.1 only, a NoCloud seed as
// a cdrom, the serial console in a file and in memory, KVM when it works
// and TCG otherwise, and QEMU stopped by its own PID on every path.
package vmboot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one boot.
type Config struct {
	Image string // disk image, qcow2 or raw
	Seed  string // NoCloud seed attached as a read-only cdrom ("": none)
	// Kernel, Initrd and Append boot a kernel directly (images without a
	// bootloader); without Kernel the image's own bootloader runs, under
	// UEFI when the disk is GPT with an EFI system partition and UEFI
	// firmware is installed, else under BIOS.
	Kernel, Initrd, Append string
	Accel                  string // "auto" (default), "kvm" or "tcg"
	// Dir holds the overlay, console.log and qemu.stderr.
	Dir string
	// Forward lists guest TCP ports to forward from 127.0.0.1.
	Forward []int
	// Net is "restricted" (default: the guest reaches nothing) or "user"
	// (the guest reaches the host's networks through QEMU's NAT, e.g. to
	// install packages).
	Net string
	// GuestFwd are QEMU guestfwd rules ("tcp:10.0.2.100:80-cmd:…"): how a
	// guest on the restricted network reaches a service the host provides
	// (an apt mirror), as the e2e suite does.
	GuestFwd  []string
	MemoryMiB int
	CPUs      int
	// Firmware is a UEFI firmware file for -bios; "" searches the usual
	// places.
	Firmware string
	// HangTimeout: under KVM, no console output for this long after start
	// is a hang (KVM guests hang on some hosts). Default 90 s.
	HangTimeout time.Duration
	// QEMU and QEMUImg name the binaries (default from PATH).
	QEMU, QEMUImg string
	// Progress receives progress lines (nil: silent).
	Progress io.Writer
	// KVMCheck says whether KVM works (nil: open /dev/kvm and ask its API
	// version). Tests replace it.
	KVMCheck func() error
}

// Error kinds of a BootError.
const (
	KindQEMUMissing = "qemu-missing"
	KindQEMUExited  = "qemu-exited"
	KindKVMHang     = "kvm-hang"
	KindTimeout     = "timeout"
	KindCanceled    = "canceled"
	KindSetup       = "setup"
)

// BootError is a boot failure with its kind and the console log to read.
type BootError struct {
	Kind       string
	Msg        string
	ConsoleLog string
	Err        error
}

func (e *BootError) Error() string {
	if e.ConsoleLog == "" {
		return e.Msg
	}
	return e.Msg + " (console log: " + e.ConsoleLog + ")"
}

func (e *BootError) Unwrap() error { return e.Err }

// Line is one serial console line and when it arrived.
type Line struct {
	At   time.Time
	Text string
}

// VM is a running guest.
type VM struct {
	cfg   Config
	cmd   *exec.Cmd
	Start time.Time
	Accel string // the accelerator in use
	Boot  string // "kernel", "uefi" or "bios"
	// Ports maps forwarded guest ports to host ports on 127.0.0.1.
	Ports      map[int]int
	ConsoleLog string

	mu       sync.Mutex
	lines    []Line
	partial  string // console text after the last newline
	output   bool   // any console byte yet
	changed  chan struct{}
	exited   chan struct{}
	exitErr  error
	stopOnce sync.Once
}

func (c *Config) defaults() {
	if c.Accel == "" {
		c.Accel = "auto"
	}
	if c.Net == "" {
		c.Net = "restricted"
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 2
	}
	if c.HangTimeout == 0 {
		c.HangTimeout = 90 * time.Second
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.QEMUImg == "" {
		c.QEMUImg = "qemu-img"
	}
	if c.KVMCheck == nil {
		c.KVMCheck = kvmWorks
	}
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "verify: "+format+"\n", args...)
	}
}

// Boot starts the guest and waits until its console shows output. Under
// KVM a guest that prints nothing within HangTimeout is a hang: with
// Accel "auto" it is stopped and booted again under TCG, with "kvm" it is
// an error.
func Boot(ctx context.Context, cfg Config) (*VM, error) {
	cfg.defaults()
	accel := cfg.Accel
	switch accel {
	case "auto":
		if err := cfg.KVMCheck(); err != nil {
			cfg.progress("KVM not usable (%v): using TCG, slower", err)
			accel = "tcg"
		} else {
			accel = "kvm"
		}
	case "kvm":
		if err := cfg.KVMCheck(); err != nil {
			return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("--accel kvm: KVM is not usable: %v", err), Err: err}
		}
	case "tcg":
	default:
		return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("accel %q is not kvm, tcg or auto", cfg.Accel)}
	}
	v, err := start(ctx, cfg, accel)
	if err != nil || accel != "kvm" {
		return v, err
	}
	if err := v.waitOutput(ctx, cfg.HangTimeout); err != nil {
		var be *BootError
		if !errors.As(err, &be) || be.Kind != KindTimeout {
			v.Stop()
			return nil, err
		}
		v.Stop()
		msg := fmt.Sprintf("KVM hang: no console output within %s under KVM (KVM guests hang on some hosts)", cfg.HangTimeout)
		if cfg.Accel == "kvm" {
			return nil, &BootError{Kind: KindKVMHang, Msg: msg + "; try --accel tcg", ConsoleLog: v.ConsoleLog}
		}
		cfg.progress("%s: booting again under TCG", msg)
		return start(ctx, cfg, "tcg")
	}
	return v, nil
}

// start creates the overlay and starts QEMU with accel.
func start(ctx context.Context, cfg Config, accel string) (*VM, error) {
	qemu, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, &BootError{Kind: KindQEMUMissing, Msg: fmt.Sprintf("qemu missing: %s not found (Debian: apt install qemu-system-x86 qemu-utils)", cfg.QEMU), Err: err}
	}
	qemuImg, err := exec.LookPath(cfg.QEMUImg)
	if err != nil {
		return nil, &BootError{Kind: KindQEMUMissing, Msg: fmt.Sprintf("qemu missing: %s not found (Debian: apt install qemu-utils)", cfg.QEMUImg), Err: err}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("work directory: %v", err), Err: err}
	}
	image, err := filepath.Abs(cfg.Image)
	if err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
	}
	format, err := imageFormat(image)
	if err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("image: %v", err), Err: err}
	}
	overlay := filepath.Join(cfg.Dir, "overlay-"+accel+".qcow2")
	_ = os.Remove(overlay) // a fresh overlay: every boot starts from the image as it is
	if out, err := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-b", image, "-F", format, overlay).CombinedOutput(); err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("qemu-img create overlay on %s: %v: %s", image, err, strings.TrimSpace(string(out))), Err: err}
	}
	v := &VM{cfg: cfg, Accel: accel, Ports: map[int]int{}, ConsoleLog: filepath.Join(cfg.Dir, "console.log"),
		changed: make(chan struct{}), exited: make(chan struct{})}
	netdev := "user,id=n0"
	if cfg.Net != "user" {
		netdev += ",restrict=on"
	}
	for _, gp := range cfg.Forward {
		hp, err := freePort()
		if err != nil {
			return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
		}
		v.Ports[gp] = hp
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, gp)
	}
	for _, g := range cfg.GuestFwd {
		if !strings.HasPrefix(g, "tcp:") || strings.Contains(g, ",") {
			return nil, &BootError{Kind: KindSetup, Msg: fmt.Sprintf("guestfwd %q: want tcp:ADDR:PORT-… without commas", g)}
		}
		netdev += ",guestfwd=" + g
	}
	args := []string{
		"-accel", accel, "-m", strconv.Itoa(cfg.MemoryMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-drive", "file=" + overlay + ",if=virtio,format=qcow2,cache=unsafe",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
		"-device", "virtio-rng-pci",
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	if cfg.Seed != "" {
		seed, err := filepath.Abs(cfg.Seed)
		if err != nil {
			return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
		}
		args = append(args, "-drive", "file="+seed+",if=ide,media=cdrom,readonly=on,format=raw")
	}
	boot, fwArgs, err := bootArgs(ctx, cfg, qemuImg, image, format)
	if err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
	}
	v.Boot = boot
	args = append(args, fwArgs...)

	cmd := exec.Command(qemu, args...)
	// Its own process group, so a terminal's Ctrl-C reaches hardbake,
	// which stops QEMU itself; and killed with hardbake should hardbake
	// die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
	}
	stderrPath := filepath.Join(cfg.Dir, "qemu.stderr")
	stderrFile, err := os.Create(stderrPath)
	if err != nil {
		return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
	}
	cmd.Stderr = stderrFile
	consoleFile, err := os.OpenFile(v.ConsoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		stderrFile.Close()
		return nil, &BootError{Kind: KindSetup, Msg: err.Error(), Err: err}
	}
	_ = os.WriteFile(filepath.Join(cfg.Dir, "qemu.cmdline"), []byte(strings.Join(append([]string{qemu}, args...), " ")+"\n"), 0o644)
	v.Start = time.Now()
	if err := cmd.Start(); err != nil {
		consoleFile.Close()
		stderrFile.Close()
		return nil, &BootError{Kind: KindQEMUExited, Msg: fmt.Sprintf("start %s: %v", qemu, err), Err: err}
	}
	v.cmd = cmd
	cfg.progress("qemu pid %d: %s boot, %s, ssh and checked ports forwarded from 127.0.0.1, console %s", cmd.Process.Pid, boot, accel, v.ConsoleLog)
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

// bootArgs picks the boot path: direct kernel, UEFI or BIOS.
func bootArgs(ctx context.Context, cfg Config, qemuImg, image, format string) (string, []string, error) {
	if cfg.Kernel != "" {
		args := []string{"-kernel", cfg.Kernel}
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		appendLine := cfg.Append
		if appendLine == "" {
			appendLine = "root=/dev/vda rw console=ttyS0"
		}
		return "kernel", append(args, "-append", appendLine), nil
	}
	head, err := readHead(ctx, qemuImg, image, format, cfg.Dir)
	if err != nil {
		return "", nil, err
	}
	if !hasESP(head) {
		return "bios", nil, nil
	}
	fw := cfg.Firmware
	if fw == "" {
		fw = findFirmware()
	}
	if fw == "" {
		cfg.progress("the image is GPT with an EFI system partition but no UEFI firmware is installed (Debian: apt install ovmf): trying BIOS")
		return "bios", nil, nil
	}
	return "uefi", []string{"-bios", fw}, nil
}

// firmwarePaths are where distributions put a single-file OVMF.
var firmwarePaths = []string{"/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd", "/usr/share/qemu/OVMF.fd", "/usr/share/edk2/ovmf/OVMF.fd"}

func findFirmware() string {
	for _, p := range firmwarePaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// imageFormat tells qcow2 from raw by the qcow2 magic.
func imageFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if string(magic[:]) == "QFI\xfb" {
		return "qcow2", nil
	}
	return "raw", nil
}

// headSectors covers the protective MBR, the GPT header and 128 entries.
const headSectors = 34

// readHead returns the first sectors of the disk, through qemu-img for
// formats other than raw.
func readHead(ctx context.Context, qemuImg, image, format, dir string) ([]byte, error) {
	if format == "raw" {
		f, err := os.Open(image)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buf := make([]byte, headSectors*512)
		n, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read %s: %w", image, err)
		}
		return buf[:n], nil
	}
	tmp := filepath.Join(dir, "head.raw")
	defer os.Remove(tmp)
	out, err := exec.CommandContext(ctx, qemuImg, "dd", "-f", format, "-O", "raw", "bs=512", "count="+strconv.Itoa(headSectors), "if="+image, "of="+tmp).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("qemu-img dd (read the partition table of %s): %v: %s", image, err, strings.TrimSpace(string(out)))
	}
	return os.ReadFile(tmp)
}

// espType is the EFI system partition type GUID as stored on disk
// (C12A7328-F81F-11D2-BA4B-00A0C93EC93B, mixed-endian).
var espType = []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// hasESP reports whether head (the disk's first sectors) holds a GPT with
// an EFI system partition in its entries.
func hasESP(head []byte) bool {
	if len(head) < 1024 || string(head[512:520]) != "EFI PART" {
		return false
	}
	le32 := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 }
	hdr := head[512:]
	entryLBA := uint64(le32(hdr[72:])) | uint64(le32(hdr[76:]))<<32
	count, size := le32(hdr[80:]), le32(hdr[84:])
	if size < 128 || size > 4096 || entryLBA < 2 || entryLBA > headSectors {
		return false
	}
	for i := uint64(0); i < uint64(count); i++ {
		off := entryLBA*512 + i*uint64(size)
		if off+16 > uint64(len(head)) {
			break
		}
		if string(head[off:off+16]) == string(espType) {
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// kvmWorks opens /dev/kvm and asks its API version (KVM_GET_API_VERSION).
func kvmWorks() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const kvmGetAPIVersion = 0xAE00
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("/dev/kvm: KVM_GET_API_VERSION: %w", errno)
	}
	if v != 12 {
		return fmt.Errorf("/dev/kvm: API version %d, want 12", v)
	}
	return nil
}

func (v *VM) readConsole(r io.Reader, logf *os.File) {
	defer logf.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			_, _ = logf.Write(buf[:n])
			v.mu.Lock()
			v.output = true
			text := v.partial + strings.ReplaceAll(string(buf[:n]), "\r", "")
			parts := strings.Split(text, "\n")
			now := time.Now()
			for _, l := range parts[:len(parts)-1] {
				v.lines = append(v.lines, Line{At: now, Text: l})
			}
			v.partial = parts[len(parts)-1]
			close(v.changed)
			v.changed = make(chan struct{})
			v.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Mark returns the console position, for waits that must only match lines
// printed later (after a reboot).
func (v *VM) Mark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.lines)
}

// Lines returns a copy of the console lines so far.
func (v *VM) Lines() []Line {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Line(nil), v.lines...)
}

// LastLine is the last non-empty console text, for progress and errors.
func (v *VM) LastLine() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := strings.TrimSpace(v.partial); s != "" {
		return s
	}
	for i := len(v.lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(v.lines[i].Text); s != "" {
			return s
		}
	}
	return ""
}

// HostAddr is 127.0.0.1:PORT for a forwarded guest port.
func (v *VM) HostAddr(guestPort int) (string, bool) {
	hp, ok := v.Ports[guestPort]
	if !ok {
		return "", false
	}
	return "127.0.0.1:" + strconv.Itoa(hp), true
}

// PID is QEMU's process id.
func (v *VM) PID() int { return v.cmd.Process.Pid }

// Exited is closed when QEMU has exited.
func (v *VM) Exited() <-chan struct{} { return v.exited }

// waitOutput waits for the first console byte.
func (v *VM) waitOutput(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		v.mu.Lock()
		got, ch := v.output, v.changed
		v.mu.Unlock()
		if got {
			return nil
		}
		select {
		case <-ch:
		case <-v.exited:
			return v.exitError("before any console output")
		case <-t.C:
			return &BootError{Kind: KindTimeout, Msg: fmt.Sprintf("no console output within %s", timeout), ConsoleLog: v.ConsoleLog}
		case <-ctx.Done():
			return &BootError{Kind: KindCanceled, Msg: "canceled: " + ctx.Err().Error(), ConsoleLog: v.ConsoleLog, Err: ctx.Err()}
		}
	}
}

func (v *VM) exitError(when string) error {
	v.mu.Lock()
	err := v.exitErr
	v.mu.Unlock()
	msg := fmt.Sprintf("qemu exited %s: %v", when, err)
	if b, rerr := os.ReadFile(filepath.Join(v.cfg.Dir, "qemu.stderr")); rerr == nil {
		if s := lastLine(string(b)); s != "" {
			msg += ": " + s
		}
	}
	return &BootError{Kind: KindQEMUExited, Msg: msg, ConsoleLog: v.ConsoleLog, Err: err}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// WaitConsole waits until a console line at index >= from matches re.
// what names the wait in progress lines and errors; every 15 s it reports
// progress with the last console line.
func (v *VM) WaitConsole(ctx context.Context, from int, re *regexp.Regexp, timeout time.Duration, what string) (Line, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	began := time.Now()
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
		case <-tick.C:
			v.cfg.progress("waiting for %s: %s of %s; console: %s", what, time.Since(began).Round(time.Second), timeout, clip(v.LastLine(), 100))
		case <-v.exited:
			return Line{}, v.exitError("while waiting for " + what)
		case <-deadline.C:
			msg := fmt.Sprintf("no %s within %s", what, timeout)
			if l := v.LastLine(); l != "" {
				msg += "; last console line: " + clip(l, 160)
			} else {
				msg += "; the console stayed empty"
			}
			return Line{}, &BootError{Kind: KindTimeout, Msg: msg, ConsoleLog: v.ConsoleLog}
		case <-ctx.Done():
			return Line{}, &BootError{Kind: KindCanceled, Msg: "canceled while waiting for " + what, ConsoleLog: v.ConsoleLog, Err: ctx.Err()}
		}
	}
}

// ansiRe matches terminal escape sequences (systemd colours its status).
var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// clip makes console text printable on one line: no escape sequences or
// control characters, at most n bytes.
func clip(s string, n int) string {
	s = ansiRe.ReplaceAllString(s, "")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Stop ends QEMU by its own PID: SIGTERM, then SIGKILL after 10 s. It is
// safe to call more than once and from several goroutines.
func (v *VM) Stop() {
	if v == nil || v.cmd == nil {
		return
	}
	v.stopOnce.Do(func() {
		select {
		case <-v.exited:
			return
		default:
		}
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.exited
		}
		v.cfg.progress("qemu pid %d stopped", v.cmd.Process.Pid)
	})
	<-v.exited
}
