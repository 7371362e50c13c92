package vmboot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU writes a qemu-system-x86_64 and a qemu-img into a directory
// for PATH. The fake QEMU records its argv and PID, then acts out mode:
// "silent" (prints nothing, as a hung guest), "kernel" (a kernel that
// never reports), "report" (kernel and the agent's line), "exit" (fails
// at once).
func fakeQEMU(t *testing.T, mode string) (bin, record string) {
	t.Helper()
	bin = t.TempDir()
	record = filepath.Join(bin, "record")
	script := `#!/bin/sh
echo $$ > ` + record + `.pid
printf '%s\n' "$@" > ` + record + `.args
case ` + mode + ` in
exit) echo "qemu-system-x86_64: -drive file=x: Could not open 'x': No such file or directory" >&2; exit 1 ;;
kernel) echo "SeaBIOS (fake)"; echo "[    0.000000] Linux version 6.1.0-fake"; echo "cloud-init starting" ;;
report) echo "[    0.000000] Linux version 6.1.0-fake"; echo "[   40.1] hardbake-firstboot[812]: hardbake: hardened (profile strict)" ;;
esac
exec sleep 300
`
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	img := `#!/bin/sh
# fake qemu-img: "create ... OVERLAY" makes the overlay file.
for last; do :; done
[ "$1" = create ] && : > "$last"
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "qemu-img"), []byte(img), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, record
}

func rawImage(t *testing.T, gptESP bool) string {
	t.Helper()
	head := make([]byte, headSectors*512)
	if gptESP {
		copy(head[512:], "EFI PART")
		put32 := func(off int, v uint32) {
			head[off], head[off+1], head[off+2], head[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
		put32(512+72, 2)                   // entries at LBA 2
		put32(512+80, 128)                 // 128 entries
		put32(512+84, 128)                 // of 128 bytes
		copy(head[2*512+128*14:], espType) // partition 15, as Debian's cloud images have it
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, head, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func noKVM() error { return errors.New("no /dev/kvm (test)") }

func processGone(t *testing.T, record string) {
	t.Helper()
	b, err := os.ReadFile(record + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("fake qemu pid %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQEMUMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Boot(context.Background(), Config{Image: rawImage(t, false), Dir: t.TempDir(), KVMCheck: noKVM})
	var be *BootError
	if !errors.As(err, &be) || be.Kind != KindQEMUMissing || !strings.Contains(err.Error(), "qemu missing: qemu-system-x86_64 not found") {
		t.Fatalf("got %v", err)
	}
}

func TestQEMUExitsAtOnce(t *testing.T) {
	bin, _ := fakeQEMU(t, "exit")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	dir := t.TempDir()
	v, err := Boot(context.Background(), Config{Image: rawImage(t, false), Dir: dir, KVMCheck: noKVM})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	_, err = v.WaitConsole(context.Background(), 0, regexp.MustCompile(`Linux version`), 20*time.Second, "kernel start")
	var be *BootError
	if !errors.As(err, &be) || be.Kind != KindQEMUExited || !strings.Contains(err.Error(), "Could not open") || !strings.Contains(err.Error(), filepath.Join(dir, "console.log")) {
		t.Fatalf("got %v", err)
	}
}

func TestNeverBoots(t *testing.T) {
	bin, record := fakeQEMU(t, "silent")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	dir := t.TempDir()
	v, err := Boot(context.Background(), Config{Image: rawImage(t, false), Dir: dir, KVMCheck: noKVM})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.WaitConsole(context.Background(), 0, regexp.MustCompile(`Linux version`), 500*time.Millisecond, "kernel start")
	v.Stop()
	var be *BootError
	if !errors.As(err, &be) || be.Kind != KindTimeout || !strings.Contains(err.Error(), "the console stayed empty") || be.ConsoleLog != filepath.Join(dir, "console.log") {
		t.Fatalf("got %v", err)
	}
	processGone(t, record)
	args, _ := os.ReadFile(record + ".args")
	for _, want := range []string{"-accel\ntcg", "restrict=on", "-bios"} {
		if want == "-bios" {
			if strings.Contains(string(args), want) {
				t.Errorf("an MBR disk must boot under BIOS, got -bios:\n%s", args)
			}
			continue
		}
		if !strings.Contains(string(args), want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	for _, l := range strings.Split(string(args), "\n") {
		if strings.Contains(l, "hostfwd") && strings.Contains(l, "hostfwd=tcp::") {
			t.Errorf("a forward not bound to 127.0.0.1: %s", l)
		}
	}
}

func TestNeverReports(t *testing.T) {
	bin, record := fakeQEMU(t, "kernel")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	seed := filepath.Join(t.TempDir(), "seed.iso")
	_ = os.WriteFile(seed, []byte("seed"), 0o644)
	fw := filepath.Join(t.TempDir(), "OVMF.fd")
	_ = os.WriteFile(fw, []byte("fw"), 0o644)
	image := rawImage(t, true)
	v, err := Boot(context.Background(), Config{Image: image, Seed: seed, Firmware: fw, Dir: t.TempDir(), Forward: []int{50022, 22}, KVMCheck: noKVM,
		GuestFwd: []string{"tcp:10.0.2.100:80-cmd:/bin/relay 127.0.0.1:8000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	if _, err := v.WaitConsole(context.Background(), 0, regexp.MustCompile(`Linux version`), 20*time.Second, "kernel start"); err != nil {
		t.Fatal(err)
	}
	_, err = v.WaitConsole(context.Background(), 0, regexp.MustCompile(`hardbake: (hardened|partial|FAILED)`), 300*time.Millisecond, "the agent's console line")
	if err == nil || !strings.Contains(err.Error(), "last console line: cloud-init starting") {
		t.Fatalf("got %v", err)
	}
	v.Stop()
	processGone(t, record)
	args, _ := os.ReadFile(record + ".args")
	for _, want := range []string{"-bios\n" + fw, "file=" + seed + ",if=ide,media=cdrom,readonly=on", "hostfwd=tcp:127.0.0.1:", ",guestfwd=tcp:10.0.2.100:80-cmd:/bin/relay 127.0.0.1:8000"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(string(args), "file="+image) {
		t.Errorf("the image itself is attached (it must only back the overlay):\n%s", args)
	}
	if v.Boot != "uefi" {
		t.Errorf("GPT with an ESP: boot %q, want uefi", v.Boot)
	}
	if _, ok := v.HostAddr(50022); !ok {
		t.Error("port 50022 not forwarded")
	}
}

func TestKVMHangFallsBackToTCG(t *testing.T) {
	bin, _ := fakeQEMU(t, "silent")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	var progress strings.Builder
	cfg := Config{Image: rawImage(t, false), Dir: t.TempDir(), KVMCheck: func() error { return nil }, HangTimeout: 300 * time.Millisecond, Progress: &progress}
	v, err := Boot(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.Stop()
	if v.Accel != "tcg" || !strings.Contains(progress.String(), "KVM hang: no console output within 300ms") {
		t.Fatalf("accel %s, progress:\n%s", v.Accel, progress.String())
	}
	cfg.Accel = "kvm"
	_, err = Boot(context.Background(), cfg)
	var be *BootError
	if !errors.As(err, &be) || be.Kind != KindKVMHang || !strings.Contains(err.Error(), "try --accel tcg") {
		t.Fatalf("explicit kvm: got %v", err)
	}
}

func TestCancelStopsQEMU(t *testing.T) {
	bin, record := fakeQEMU(t, "kernel")
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	ctx, cancel := context.WithCancel(context.Background())
	v, err := Boot(ctx, Config{Image: rawImage(t, false), Kernel: "/vmlinuz", Initrd: "/initrd.img", Dir: t.TempDir(), KVMCheck: noKVM})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err = v.WaitConsole(ctx, 0, regexp.MustCompile(`never`), time.Minute, "a line that never comes")
	v.Stop()
	var be *BootError
	if !errors.As(err, &be) || be.Kind != KindCanceled {
		t.Fatalf("got %v", err)
	}
	processGone(t, record)
	args, _ := os.ReadFile(record + ".args")
	if !strings.Contains(string(args), "-kernel\n/vmlinuz\n-initrd\n/initrd.img\n-append\nroot=/dev/vda rw console=ttyS0") {
		t.Errorf("direct kernel boot args:\n%s", args)
	}
}

func TestHasESP(t *testing.T) {
	read := func(p string) []byte { b, _ := os.ReadFile(p); return b }
	if !hasESP(read(rawImage(t, true))) || hasESP(read(rawImage(t, false))) || hasESP(nil) {
		t.Error("hasESP")
	}
}

func TestClip(t *testing.T) {
	got := clip("\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mjournald\x1b[0m\x1b[K", 100)
	if got != "OK  ] Started journald" {
		t.Errorf("clip: %q", got)
	}
	if got := clip("abcdef", 3); got != "abc…" {
		t.Errorf("clip: %q", got)
	}
}
