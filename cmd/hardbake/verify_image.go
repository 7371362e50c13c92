package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/verify"
	"hardbake.dev/hardbake/verify/vmboot"
)

var (
	kernelRe = regexp.MustCompile(`Linux version`)
	// agentLineRe is the agent's last console line of a boot.
	agentLineRe = regexp.MustCompile(`hardbake: (hardened|partial|FAILED)`)
)

func runVerifyImage(e *env, args []string) error {
	fs := newFlags(e, "verify image", "IMAGE [flags]")
	var c commonVerifyFlags
	c.register(fs)
	var in inputFlags
	in.register(fs)
	seed := fs.String("seed", "", "seed `ISO` to boot with (default: render one from --profile/--order as `hardbake iso` does)")
	kernel := fs.String("kernel", "", "boot this kernel `FILE` directly (images without a bootloader)")
	initrd := fs.String("initrd", "", "initrd `FILE` for --kernel")
	appendLine := fs.String("append", "", "kernel command line for --kernel (default \"root=/dev/vda rw console=ttyS0\")")
	reboot := fs.Bool("reboot", false, "reboot the guest after the checks and check again")
	keep := fs.String("keep", "", "keep the evidence (console log, seed, results) in `DIR`")
	accel := fs.String("accel", "auto", "QEMU accelerator: kvm, tcg or auto (KVM when /dev/kvm works)")
	netMode := fs.String("net", "restricted", "guest network: restricted (reaches nothing) or user (NAT to the host's networks, e.g. for package installs)")
	guestFwd := fs.StringArray("guestfwd", nil, "QEMU guestfwd `RULE` (tcp:10.0.2.100:80-cmd:CMD): a service on the host the restricted guest may reach, e.g. an apt mirror (repeatable)")
	timeout := fs.Duration("timeout", 20*time.Minute, "wait this long for the agent's console line")
	bootTimeout := fs.Duration("boot-timeout", 5*time.Minute, "wait this long for the kernel on the console")
	memory := fs.Int("memory", 1024, "guest memory in `MiB`")
	loginTimeout := fs.Duration("login-timeout", 3*time.Minute, "after the agent's line, wait this long for the key login")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("verify image: want exactly one IMAGE, got %d arguments", fs.NArg())
	}
	image := fs.Arg(0)
	_ = fs.Parse(nil) // drop IMAGE so the shared input flags see no stray argument
	if st, err := os.Stat(image); err != nil || st.IsDir() {
		return usagef("verify image: IMAGE %q is not a file", image)
	}
	switch {
	case *accel != "auto" && *accel != "kvm" && *accel != "tcg":
		return usagef("--accel: %q is not kvm, tcg or auto", *accel)
	case *netMode != "restricted" && *netMode != "user":
		return usagef("--net: %q is not restricted or user", *netMode)
	case (*initrd != "" || *appendLine != "") && *kernel == "":
		return usagef("--initrd and --append need --kernel")
	case *seed != "" && !strings.HasSuffix(strings.ToLower(*seed), ".iso"):
		return usagef("--seed: %q is not an .iso (write one with `hardbake iso`)", *seed)
	case len(*guestFwd) > 0 && !validGuestFwd(*guestFwd):
		return usagef("--guestfwd: want tcp:ADDR:PORT-cmd:COMMAND or tcp:ADDR:PORT-tcp:HOST:PORT, without commas")
	case *timeout <= 0 || *bootTimeout <= 0 || *loginTimeout <= 0:
		return usagef("--timeout, --boot-timeout and --login-timeout must be positive")
	}
	if err := checkFingerprints(c.known); err != nil {
		return err
	}
	var signer ssh.Signer
	var authLine string
	var err error
	if c.identity != "" {
		if signer, err = loadIdentity(c.identity); err != nil {
			return err
		}
		authLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " hardbake-verify"
	} else if signer, authLine, err = verify.NewKey("hardbake-verify-throwaway"); err != nil {
		return err
	}

	work := *keep
	if work == "" {
		if work, err = os.MkdirTemp("", "hardbake-verify-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("--keep: %w", err)
	}
	ok := false
	defer func() {
		if *keep == "" && ok {
			os.RemoveAll(work)
		} else if !ok {
			fmt.Fprintf(e.stderr, "hardbake: evidence kept in %s\n", work)
		}
	}()

	// What to boot and what to expect.
	configGiven := fs.Changed("profile") || fs.Changed("order")
	var exp verify.Expect
	seedPath := *seed
	switch {
	case seedPath != "" && configGiven:
		inp, err := in.loadForVerify(e, fs, "", false)
		if err != nil {
			return err
		}
		if exp, _, err = expectFromConfig(inp.profile, inp.machine, c.probePort); err != nil {
			return err
		}
	case seedPath != "":
		pl, err := verify.PlanFromSeed(seedPath)
		if err != nil {
			return fmt.Errorf("--seed: %w; pass --profile/--order to say what to expect", err)
		}
		exp = verify.ExpectFromPlan(pl, "")
		exp.ProbePort = exp.PickProbePort(c.probePort)
	default:
		inp, err := in.loadForVerify(e, fs, authLine, true)
		if err != nil {
			return err
		}
		res := inp.seed
		img, err := res.Image(images.ISO)
		if err != nil {
			return err
		}
		seedPath = filepath.Join(work, "seed.iso")
		if err := bake.WriteImage(seedPath, img, bake.WriteOptions{Field: "--keep"}); err != nil {
			return err
		}
		exp = verify.ExpectFromPlan(res.Plan, inp.profile.SSH.Crypto)
		if exp.Firewall {
			exp.Restricted = restrictedFrom(inp.profile, inp.machine)
		}
		exp.ProbePort = exp.PickProbePort(c.probePort)
		fmt.Fprintf(e.stderr, "hardbake: seed %s (profile %s, instance %s, ssh port %d)\n", seedPath, inp.profile.Metadata.Name, inp.machine.InstanceID, res.SSHPort)
	}
	exp.KnownHostKeys = c.known
	user := defaultString(c.user, defaultString(exp.Admin, "admin"))

	ctx, cancel := signalContext()
	defer cancel()
	vm, err := vmboot.Boot(ctx, vmboot.Config{
		Image: image, Seed: seedPath, Kernel: *kernel, Initrd: *initrd, Append: *appendLine,
		Accel: *accel, Dir: work, Forward: exp.GuestPorts(), Net: *netMode, GuestFwd: *guestFwd, MemoryMiB: *memory,
		Progress: e.stderr,
	})
	if err != nil {
		return bootFailure("qemu", err)
	}
	defer vm.Stop()

	var rs verify.Results
	agentLine, err := waitBoot(ctx, e, vm, 0, *bootTimeout, *timeout, exp.Report)
	if err != nil {
		return err
	}
	if agentLine != "" {
		rs = append(rs, agentConsoleResult(agentLine, ""))
	}
	target := verify.Target{Addr: vm.HostAddr, Forwarded: true, User: user, Signer: signer, Timeout: c.opTimeout}
	opts := verify.Options{LoginWait: *loginTimeout, Progress: e.stderr, BanTest: c.banTest && !*reboot}
	rs = append(rs, verify.Run(ctx, target, exp, opts)...)
	if *reboot && ctx.Err() == nil {
		fmt.Fprintln(e.stderr, "verify: rebooting the guest")
		mark := vm.Mark()
		if err := rebootGuest(ctx, vm, user, signer, exp.SSHPort, c.opTimeout); err != nil {
			rs = append(rs, verify.Result{ID: "reboot", Name: "reboot", Status: verify.Fail, Evidence: err.Error()})
		} else if _, err := vm.WaitConsole(ctx, mark, kernelRe, *bootTimeout, "kernel start after the reboot"); err != nil {
			rs = append(rs, verify.Result{ID: "reboot", Name: "reboot", Status: verify.Fail, Evidence: err.Error()})
		} else {
			opts.Suffix, opts.BanTest = " (after reboot)", c.banTest
			rs = append(rs, verify.Run(ctx, target, exp, opts)...)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("verify: interrupted (console log: %s)", vm.ConsoleLog)
	}
	vm.Stop()
	if data, err := json.MarshalIndent(map[string]any{"checks": rs, "expect": exp, "console_log": vm.ConsoleLog}, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(work, "results.json"), append(data, '\n'), 0o644)
	}
	err = printResults(e, c.jsonOut, rs, map[string]any{"image": image, "seed": seedPath, "expect": exp, "console_log": vm.ConsoleLog, "accel": vm.Accel, "boot": vm.Boot})
	ok = err == nil
	return err
}

func validGuestFwd(rules []string) bool {
	for _, r := range rules {
		if !strings.HasPrefix(r, "tcp:") || strings.Contains(r, ",") || !strings.Contains(r, "-") {
			return false
		}
	}
	return true
}

// waitBoot waits for the kernel, then (for a hardbake seed) the agent's
// last console line; each failure is one line naming the console log.
func waitBoot(ctx context.Context, e *env, vm *vmboot.VM, from int, bootTimeout, timeout time.Duration, agent bool) (string, error) {
	if _, err := vm.WaitConsole(ctx, from, kernelRe, bootTimeout, "kernel start (\"Linux version\" on the console)"); err != nil {
		return "", bootFailure("image does not boot", err)
	}
	fmt.Fprintf(e.stderr, "verify: kernel up after %s\n", time.Since(vm.Start).Round(time.Second))
	if !agent {
		return "", nil
	}
	l, err := vm.WaitConsole(ctx, from, agentLineRe, timeout, "agent console line (hardbake: hardened|partial|FAILED)")
	if err != nil {
		return "", bootFailure("guest never reported", err)
	}
	fmt.Fprintf(e.stderr, "verify: %s (%s after start)\n", agentText(l.Text), l.At.Sub(vm.Start).Round(time.Second))
	return l.Text, nil
}

// bootFailure makes a boot error one line: what failed, why, where the
// console log is. Interruption is reported as such.
func bootFailure(what string, err error) error {
	var be *vmboot.BootError
	if errors.As(err, &be) {
		switch be.Kind {
		case vmboot.KindCanceled:
			return fmt.Errorf("verify: interrupted (console log: %s)", be.ConsoleLog)
		case vmboot.KindQEMUMissing, vmboot.KindKVMHang, vmboot.KindQEMUExited, vmboot.KindSetup:
			return fmt.Errorf("verify: %s", be.Error())
		}
	}
	return fmt.Errorf("verify: %s: %w", what, err)
}

func agentText(line string) string {
	if i := strings.Index(line, "hardbake: "); i >= 0 {
		return strings.TrimSpace(line[i:])
	}
	return line
}

func agentConsoleResult(line, suffix string) verify.Result {
	r := verify.Result{ID: "agent-console", Name: "agent console line says hardened" + suffix, Evidence: agentText(line)}
	r.Status = verify.Fail
	if strings.Contains(line, "hardbake: hardened") {
		r.Status = verify.Pass
	}
	return r
}

// rebootGuest asks the guest to reboot over SSH as the admin.
func rebootGuest(ctx context.Context, vm *vmboot.VM, user string, signer ssh.Signer, port int, timeout time.Duration) error {
	addr, ok := vm.HostAddr(port)
	if !ok {
		return fmt.Errorf("port %d not forwarded", port)
	}
	s, err := verify.ConnectKey(ctx, addr, user, signer, timeout)
	if err != nil {
		return fmt.Errorf("log in to reboot: %w", err)
	}
	defer s.Close()
	// The connection drops as the guest goes down: no exit status to wait for.
	_, _ = verify.Exec(ctx, s.Client, "sudo -n systemctl reboot", 10*time.Second)
	return nil
}

// verifyInputs are the profile and machine verify expects, and the seed
// it rendered (nil with a given --seed).
type verifyInputs struct {
	profile *config.Profile
	machine *config.Machine
	seed    *bake.Result
}

// loadForVerify loads the profile and order as `hardbake iso` does; with
// agent (a seed is rendered, through the same library as iso) the key
// verify logs in with is added to the admin's keys.
func (f *inputFlags) loadForVerify(e *env, fs *pflag.FlagSet, authLine string, agent bool) (*verifyInputs, error) {
	if agent {
		// Rendering a seed: authorize the key verify logs in with, and
		// name the machine when nothing does.
		f.keys = append(f.keys, authLine)
		if f.order == "" && !fs.Changed("hostname") {
			if err := fs.Set("hostname", "hardbake-verify"); err != nil {
				return nil, err
			}
		}
		res, _, err := f.compile(e, fs)
		if err != nil {
			return nil, err
		}
		return &verifyInputs{profile: res.Profile, machine: res.Machine, seed: res}, nil
	}
	// A given seed: the same inputs it was rendered from, untouched (the
	// keys feed the derived instance-id and with it the random port).
	p, profErr := loadProfile(f.profile)
	order, src, ov, orderErr := f.loadOrder(fs)
	if err := config.Join(profErr, orderErr); err != nil {
		return nil, err
	}
	ov.Apply(order, src)
	m, err := order.Resolve(p, src)
	if err != nil {
		return nil, err
	}
	return &verifyInputs{profile: p, machine: m}, nil
}
