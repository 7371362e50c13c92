package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/verify"
)

// errChecksFailed is returned when the run completed and a check failed:
// exit code 1, with the table already printed.
var errChecksFailed = errors.New("a check failed")

func runVerify(e *env, args []string) error {
	if len(args) == 0 {
		return usagef("verify: want `verify host ADDRESS` or `verify image IMAGE` (see --help of each)")
	}
	switch args[0] {
	case "host":
		return runVerifyHost(e, args[1:])
	case "image":
		return runVerifyImage(e, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(e.stdout, "Usage:\n  hardbake verify host ADDRESS [flags]   check a live machine from outside\n  hardbake verify image IMAGE [flags]    boot IMAGE with a seed under QEMU, then check it\n\nExit codes: 0 every check passed, 1 a check failed (or the boot did), 2 bad input.")
		return nil
	}
	return usagef("verify: unknown subcommand %q (want host or image)", args[0])
}

// commonVerifyFlags are the flags host and image share.
type commonVerifyFlags struct {
	user      string
	identity  string
	known     []string
	jsonOut   bool
	banTest   bool
	opTimeout time.Duration
	probePort int
}

func (c *commonVerifyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.user, "user", "", "admin `USER` to log in as (default: the order's or profile's admin, else admin)")
	fs.StringVarP(&c.identity, "identity", "i", "", "private key `FILE` for the admin's login (unencrypted OpenSSH or PEM)")
	fs.StringArrayVar(&c.known, "known-fingerprint", nil, "host key fingerprint (SHA256:…) the server's key must be among (repeatable)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&c.banTest, "ban-test", false, "also fail logins until fail2ban bans this client, then check the ban is lifted (unban scheduled inside first)")
	fs.DurationVar(&c.opTimeout, "op-timeout", 30*time.Second, "timeout of each network operation")
	fs.IntVar(&c.probePort, "probe-port", verify.DefaultProbePort, "a `PORT` the profile does not allow, checked to be filtered")
}

// loadIdentity reads the admin's private key.
func loadIdentity(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--identity: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, usagef("--identity: %s is encrypted; give an unencrypted copy of the key", path)
		}
		return nil, usagef("--identity: %s: %v", path, err)
	}
	return signer, nil
}

func checkFingerprints(fps []string) error {
	for _, fp := range fps {
		if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
			return usagef("--known-fingerprint: %q is not a SHA256:… fingerprint (ssh-keygen -lf KEY)", fp)
		}
	}
	return nil
}

// placeholderAgent lets render compile a plan when only the expectations
// are wanted: the user-data it pins this agent in is thrown away.
func placeholderAgent() render.Agent {
	return render.NewAgent(render.AgentURL, "amd64", nil, "https://hardbake.invalid/agent")
}

// restrictedFrom lists the profile's and the order's source-restricted ports.
func restrictedFrom(p *config.Profile, m *config.Machine) []verify.Restricted {
	var out []verify.Restricted
	for _, s := range append(append([]config.Service(nil), p.Firewall.Services...), m.Allow...) {
		if len(s.Sources) == 0 {
			continue
		}
		r := verify.Restricted{Port: s.Port, Proto: s.Proto}
		if r.Proto == "" {
			r.Proto = "tcp"
		}
		for _, src := range s.Sources {
			if pre, err := netip.ParsePrefix(src); err == nil {
				r.Sources = append(r.Sources, pre)
			} else if a, err := netip.ParseAddr(src); err == nil {
				r.Sources = append(r.Sources, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		out = append(out, r)
	}
	return out
}

// expectFromConfig renders the plan for a profile and machine and derives
// what the machine must look like.
func expectFromConfig(p *config.Profile, m *config.Machine, probePort int) (verify.Expect, *plan.Plan, error) {
	res, err := render.Compile(p, m, placeholderAgent(), render.Options{})
	if err != nil {
		return verify.Expect{}, nil, err
	}
	exp := verify.ExpectFromPlan(res.Plan, p.SSH.Crypto)
	if exp.Firewall {
		exp.Restricted = restrictedFrom(p, m)
	}
	exp.ProbePort = exp.PickProbePort(probePort)
	return exp, res.Plan, nil
}

// printResults writes the table or JSON and maps failures to exit code 1.
func printResults(e *env, jsonOut bool, rs verify.Results, extra map[string]any) error {
	var err error
	if jsonOut {
		err = rs.WriteJSON(e.stdout, extra)
	} else {
		err = rs.WriteTable(e.stdout)
	}
	if err != nil {
		return err
	}
	if !rs.OK() {
		var names []string
		for _, r := range rs.Failed() {
			names = append(names, r.Name)
		}
		return fmt.Errorf("verify: %d check(s) failed: %s", len(names), strings.Join(names, "; "))
	}
	return nil
}

// signalContext ends on Ctrl-C or SIGTERM, so every wait returns and the
// deferred clean-up (QEMU's stop) runs.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runVerifyHost(e *env, args []string) error {
	fs := newFlags(e, "verify host", "ADDRESS [flags]")
	var c commonVerifyFlags
	c.register(fs)
	port := fs.Int("port", 0, "SSH `PORT` (default: the order's; required without --order)")
	profile := fs.String("profile", "", "built-in profile `NAME` or profile FILE saying what to expect")
	order := fs.String("order", "", "order `FILE` of the machine (its SSH port, admin, allowed ports)")
	forwards := fs.StringArray("forwarded", nil, "`PORT=HOSTPORT`: the machine's PORT is reached at ADDRESS:HOSTPORT, as behind QEMU's hostfwd (repeatable; unlisted ports are unreachable)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	fwd, err := parseForwards(*forwards)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("verify host: want exactly one ADDRESS, got %d arguments", fs.NArg())
	}
	host := fs.Arg(0)
	if strings.ContainsAny(host, " /") || host == "" {
		return usagef("verify host: %q is not a host name or address", host)
	}
	if *port < 0 || *port > 65535 {
		return usagef("--port: %d is not 1–65535", *port)
	}
	if err := checkFingerprints(c.known); err != nil {
		return err
	}
	var signer ssh.Signer
	if c.identity != "" {
		if signer, err = loadIdentity(c.identity); err != nil {
			return err
		}
	}
	var exp verify.Expect
	source := ""
	switch {
	case *order != "":
		p, err := loadProfile(defaultString(*profile, "baseline"))
		in := inputFlags{order: *order}
		o, src, _, orderErr := in.loadOrder(fs)
		if err := config.Join(err, orderErr); err != nil {
			return err
		}
		if *port != 0 {
			o.SSHPort = config.PortSpec{Value: *port}
		}
		m, err := o.Resolve(p, src)
		if err != nil {
			return err
		}
		if exp, _, err = expectFromConfig(p, m, c.probePort); err != nil {
			return err
		}
		source = fmt.Sprintf("profile %s, order %s", p.Metadata.Name, *order)
		if c.user == "" {
			c.user = m.AdminUser
		}
	case *profile != "":
		if *port == 0 {
			return usagef("verify host: --port is required with --profile and no --order (the port comes from the order)")
		}
		p, err := loadProfile(*profile)
		if err != nil {
			return err
		}
		user := defaultString(c.user, p.Admin.Name)
		m, err := syntheticMachine(p, user, *port)
		if err != nil {
			return err
		}
		if exp, _, err = expectFromConfig(p, m, c.probePort); err != nil {
			return err
		}
		c.user = user
		source = "profile " + p.Metadata.Name
	default:
		if *port == 0 {
			return usagef("verify host: --port is required without --order")
		}
		c.user = defaultString(c.user, "admin")
		ctx, cancel := signalContext()
		exp, source = expectFromMachine(ctx, host, *port, fwd, c, signer)
		cancel()
	}
	exp.KnownHostKeys = c.known
	ctx, cancel := signalContext()
	defer cancel()
	fmt.Fprintf(e.stderr, "hardbake: verifying %s (ssh port %d, admin %s; expectations from %s)\n", host, exp.SSHPort, c.user, source)
	t := verify.Target{Host: host, User: c.user, Signer: signer, Timeout: c.opTimeout}
	if len(fwd) > 0 {
		t.Forwarded = true
		t.Addr = func(port int) (string, bool) {
			hp, ok := fwd[port]
			return net.JoinHostPort(host, strconv.Itoa(hp)), ok
		}
	}
	rs := verify.Run(ctx, t, exp, verify.Options{BanTest: c.banTest, Progress: e.stderr})
	if ctx.Err() != nil {
		return fmt.Errorf("verify: interrupted")
	}
	return printResults(e, c.jsonOut, rs, map[string]any{"target": host, "expect": exp})
}

// syntheticMachine is a machine for a profile alone: what the checks need
// is the admin, the port and the profile's own settings.
func syntheticMachine(p *config.Profile, user string, port int) (*config.Machine, error) {
	_, line, err := verify.NewKey("")
	if err != nil {
		return nil, err
	}
	o := &config.Order{Hostname: "verify.invalid", AdminUser: user, SSHKeys: []string{line}}
	if port != 0 {
		o.SSHPort = config.PortSpec{Value: port}
	}
	src := config.NewSource("")
	src.SetFlag("admin_user", "--user")
	src.SetFlag("ssh_port", "--port")
	return o.Resolve(p, src)
}

// expectFromMachine takes the expectations from the plan the machine's
// agent applied (/var/lib/hardbake/plan.json), read over SSH, when no
// profile or order says them. Without a key or a plan, only what every
// hardened machine shares is expected.
func expectFromMachine(ctx context.Context, host string, port int, fwd map[int]int, c commonVerifyFlags, signer ssh.Signer) (verify.Expect, string) {
	generic := verify.Expect{SSHPort: port, Admin: c.user, Policy: verify.PolicyFromSSHD("compatible", ""),
		Firewall: true, Fail2ban: true, KnownHostKeys: c.known}
	generic.ProbePort = generic.PickProbePort(c.probePort)
	if signer == nil {
		return generic, "defaults (no --profile, --order or --identity)"
	}
	dial := port
	if hp, ok := fwd[port]; ok {
		dial = hp
	}
	addr := net.JoinHostPort(host, strconv.Itoa(dial))
	s, err := verify.ConnectKey(ctx, addr, c.user, signer, c.opTimeout)
	if err != nil {
		return generic, "defaults (no --profile or --order; login to read the machine's plan failed)"
	}
	defer s.Close()
	out, err := verify.Exec(ctx, s.Client, "sudo -n cat "+plan.PlanPath, c.opTimeout)
	if err != nil {
		return generic, "defaults (no --profile or --order; no " + plan.PlanPath + " on the machine)"
	}
	pl, err := render.DecodePlan([]byte(out), "")
	if err != nil {
		return generic, "defaults (no --profile or --order; " + plan.PlanPath + ": " + err.Error() + ")"
	}
	exp := verify.ExpectFromPlan(pl, "")
	exp.ProbePort = exp.PickProbePort(c.probePort)
	if exp.SSHPort != port {
		// The port the user dialled wins: checking it is what was asked.
		exp.SSHPort = port
	}
	return exp, "the machine's own plan (" + plan.PlanPath + ")"
}

// parseForwards reads --forwarded PORT=HOSTPORT pairs.
func parseForwards(list []string) (map[int]int, error) {
	m := map[int]int{}
	for _, f := range list {
		a, b, ok := strings.Cut(f, "=")
		p, err1 := strconv.Atoi(a)
		hp, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || p < 1 || p > 65535 || hp < 1 || hp > 65535 {
			return nil, usagef("--forwarded: %q is not PORT=HOSTPORT", f)
		}
		m[p] = hp
	}
	return m, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
