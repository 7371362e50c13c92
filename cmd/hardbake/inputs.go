package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

// inputFlags are the flags render and iso share: profile, order, agent.
type inputFlags struct {
	// orderSrc is the order's source after compile: positions for
	// diagnostics found after rendering (hardbake edge).
	orderSrc *config.Source

	profile     string
	order       string
	hostname    string
	instanceID  string
	adminUser   string
	keyFiles    []string
	keys        []string
	sshPort     string
	allow       []string
	agent       string
	arch        string
	agentBinary string
	agentSHA256 string
	netcfg      strictBool
	reportURL   string
	reportKey   string
}

func (f *inputFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.profile, "profile", "baseline", "built-in profile `NAME` or profile FILE")
	fs.StringVar(&f.order, "order", "", "order `FILE` (YAML or JSON)")
	fs.StringVar(&f.hostname, "hostname", "", "hostname (overrides the order)")
	fs.StringVar(&f.instanceID, "instance-id", "", "cloud-init instance-id (default: derived from the order)")
	fs.StringVar(&f.adminUser, "admin-user", "", "admin user name (overrides the order)")
	fs.StringArrayVar(&f.keyFiles, "ssh-key-file", nil, "file of SSH public keys for the admin (repeatable)")
	fs.StringArrayVar(&f.keys, "ssh-key", nil, "SSH public key line for the admin (repeatable)")
	fs.StringVar(&f.sshPort, "ssh-port", "", "SSH `PORT`: 1–65535 in plain decimal, or random (overrides the order and the profile)")
	fs.StringArrayVar(&f.allow, "allow", nil, "extra inbound `PORT[/tcp|/udp]` (repeatable)")
	fs.StringVar(&f.agent, "agent", "seed", "where the machine gets the agent: seed, url=URL or embed")
	fs.StringVar(&f.arch, "arch", "amd64", "target architecture: amd64 or arm64")
	fs.StringVar(&f.agentBinary, "agent-binary", "", "agent binary `PATH` (default: hardbake-firstboot-linux-ARCH beside hardbake)")
	fs.StringVar(&f.agentSHA256, "agent-sha256", "", "sha256 of the agent at --agent url=URL when no binary is at hand")
	fs.Var(&f.netcfg, "network-config", "also write network-config (DHCP on every Ethernet interface); =true or =false only")
	fs.Lookup("network-config").NoOptDefVal = "true"
	fs.StringVar(&f.reportURL, "report-url", "", "`URL` the machine posts its signed report to (hardbaked: .../report/ORDER_ID)")
	fs.StringVar(&f.reportKey, "report-key-file", "", "`FILE` holding the report key (64 hex digits), with --report-url")
}

// compile loads the inputs and bakes them, printing render's warnings. It
// also returns the input files, which no output may overwrite.
func (f *inputFlags) compile(e *env, fs *pflag.FlagSet) (*bake.Result, []bake.Input, error) {
	if fs.NArg() > 0 {
		return nil, nil, usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	p, profErr := loadProfile(f.profile)
	order, src, ov, orderErr := f.loadOrder(fs)
	if err := config.Join(profErr, orderErr); err != nil {
		return nil, nil, err
	}
	f.orderSrc = src
	report, err := f.loadReport()
	if err != nil {
		return nil, nil, err
	}
	res, err := bake.Seed(bake.Request{
		Profile: p, Order: order, Source: src, Overrides: ov, NetworkConfig: bool(f.netcfg), Report: report,
		Agent: bake.AgentRequest{Mode: f.agent, Arch: f.arch, Path: f.agentBinary, SearchDirs: bake.DefaultSearchDirs(), SHA256: f.agentSHA256},
	})
	if err != nil {
		return nil, nil, cliError(err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(e.stderr, "hardbake: warning:", w)
	}
	return res, f.inputFiles(res), nil
}

// loadReport reads --report-url and --report-key-file (both or neither);
// render checks their shape.
func (f *inputFlags) loadReport() (*render.ReportEndpoint, error) {
	if (f.reportURL == "") != (f.reportKey == "") {
		return nil, usagef("--report-url and --report-key-file go together")
	}
	if f.reportURL == "" {
		return nil, nil
	}
	key, err := os.ReadFile(f.reportKey)
	if err != nil {
		return nil, usagef("--report-key-file: %v", err)
	}
	ep := &render.ReportEndpoint{URL: f.reportURL, Key: strings.TrimSpace(string(key))}
	if err := ep.Validate(); err != nil {
		return nil, usagef("--report-url/--report-key-file: %v", err)
	}
	return ep, nil
}

// inputFiles are the files this run read.
func (f *inputFlags) inputFiles(res *bake.Result) []bake.Input {
	var in []bake.Input
	if _, builtin := templates.Profile(f.profile); !builtin || strings.ContainsAny(f.profile, "/.") {
		in = append(in, bake.Input{Flag: "--profile", Path: f.profile})
	}
	in = append(in, bake.Input{Flag: "--order", Path: f.order})
	for _, k := range f.keyFiles {
		in = append(in, bake.Input{Flag: "--ssh-key-file", Path: k})
	}
	return append(in, bake.Input{Flag: "--agent-binary", Path: res.Agent.Path})
}

// loadProfile reads a built-in profile by name, or a profile file.
func loadProfile(ref string) (*config.Profile, error) {
	if data, ok := templates.Profile(ref); ok && !strings.ContainsAny(ref, "/.") {
		return config.DecodeProfile("builtin:"+ref, data)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("--profile: %q is neither a built-in profile (%s) nor a file", ref, strings.Join(templates.ProfileNames(), ", "))
		}
		return nil, fmt.Errorf("read profile: %w", quotePath(err))
	}
	return config.DecodeProfile(ref, data)
}

// loadOrder reads the order file, if any, and the flags that override it
// (bake applies them).
func (f *inputFlags) loadOrder(fs *pflag.FlagSet) (*config.Order, *config.Source, bake.Overrides, error) {
	order, src := &config.Order{}, config.NewSource("")
	ov := bake.Overrides{Origins: map[string]string{}}
	if f.order != "" {
		data, err := os.ReadFile(f.order)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, ov, usagef("--order: %v", quotePath(err))
			}
			return nil, nil, ov, fmt.Errorf("read order: %w", quotePath(err))
		}
		if order, src, err = config.DecodeOrder(f.order, data); err != nil {
			return nil, nil, ov, err
		}
	}
	set := func(flag, path string, apply func()) {
		if fs.Changed(flag) {
			apply()
			ov.Origins[path] = "--" + flag
		}
	}
	set("hostname", "hostname", func() { ov.Hostname = &f.hostname })
	set("instance-id", "instance_id", func() { ov.InstanceID = &f.instanceID })
	set("admin-user", "admin_user", func() { ov.AdminUser = &f.adminUser })
	if fs.Changed("ssh-port") {
		// The same parser as ssh_port in an order and ssh.port in a
		// profile: one spelling of a port everywhere.
		port, reason := config.ParsePort(f.sshPort)
		if reason != "" {
			return nil, nil, ov, &config.InputError{Errs: []*config.FieldError{{File: "--ssh-port", Path: "ssh_port", Code: config.CodeInvalidPort, Reason: reason}}}
		}
		ov.SSHPort = &port
		ov.Origins["ssh_port"] = "--ssh-port"
	}
	if len(f.allow) > 0 {
		ov.Allow = f.allow
		for i := range f.allow {
			ov.Origins[fmt.Sprintf("allow[%d]", i)] = "--allow"
		}
	}
	if len(f.keys) > 0 || len(f.keyFiles) > 0 {
		var keys []string
		var errs []error
		for _, file := range f.keyFiles {
			data, err := os.ReadFile(file)
			if err != nil {
				errs = append(errs, usagef("--ssh-key-file: %v", quotePath(err)))
				continue
			}
			k, err := config.ParseKeyFile(file, data)
			errs = append(errs, err)
			keys = append(keys, k...)
		}
		if err := joinErrors(errs); err != nil {
			return nil, nil, ov, err
		}
		for i := range f.keys {
			ov.Origins[fmt.Sprintf("ssh_keys[%d]", len(keys)+i)] = "--ssh-key"
		}
		ov.SSHKeys = append(keys, f.keys...)
	}
	if f.order == "" {
		ov.Origins["hostname"] = "--hostname"
		ov.Origins["ssh_keys"] = "--ssh-key"
	}
	return order, src, ov, nil
}

func joinErrors(errs []error) error {
	for _, err := range errs {
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
	}
	return config.Join(errs...)
}

// strictBool is a boolean flag that takes only true and false: pflag's own
// bool flags also take 1, t, T, TRUE, True and their opposites, a second
// spelling of each value that YAML and JSON inputs refuse.
type strictBool bool

func (b *strictBool) Set(s string) error {
	v, reason := config.ParseBool(s)
	if reason != "" {
		return errors.New(reason)
	}
	*b = strictBool(v)
	return nil
}

func (b *strictBool) String() string { return strconv.FormatBool(bool(*b)) }

func (b *strictBool) Type() string { return "bool" }

// quotedPath is a file error whose path prints quoted: a path is input, and
// os errors print it raw (a name with a newline or a terminal escape).
type quotedPath struct{ *fs.PathError }

func (q quotedPath) Error() string { return fmt.Sprintf("%s %q: %v", q.Op, q.Path, q.Err) }

func (q quotedPath) Unwrap() error { return q.PathError }

func quotePath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return quotedPath{pe}
	}
	return err
}
