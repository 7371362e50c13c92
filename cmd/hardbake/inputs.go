package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

// inputFlags are the flags render and iso share: profile, order, agent.
type inputFlags struct {
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
}

// compile loads the inputs and renders them, printing render's warnings.
func (f *inputFlags) compile(e *env, fs *pflag.FlagSet) (*inputs, *render.Result, error) {
	in, err := f.load(fs)
	if err != nil {
		return nil, nil, err
	}
	res, err := render.Compile(in.profile, in.machine, in.agent, render.Options{NetworkConfig: bool(f.netcfg)})
	if err != nil {
		return nil, nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(e.stderr, "hardbake: warning:", w)
	}
	return in, res, nil
}

// inputs is what render and iso work from.
type inputs struct {
	profile     *config.Profile
	machine     *config.Machine
	agent       render.Agent
	agentBinary []byte // nil with --agent url and --agent-sha256
}

func (f *inputFlags) load(fs *pflag.FlagSet) (*inputs, error) {
	if fs.NArg() > 0 {
		return nil, usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	p, profErr := loadProfile(f.profile)
	order, src, orderErr := f.loadOrder(fs)
	if err := config.Join(profErr, orderErr); err != nil {
		return nil, err
	}
	m, err := order.Resolve(p, src)
	if err != nil {
		return nil, err
	}
	in := &inputs{profile: p, machine: m}
	if err := f.loadAgent(in); err != nil {
		return nil, err
	}
	return in, nil
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

// loadOrder reads the order file, if any, then applies the flags over it.
func (f *inputFlags) loadOrder(fs *pflag.FlagSet) (*config.Order, *config.Source, error) {
	order, src := &config.Order{}, config.NewSource("")
	if f.order != "" {
		data, err := os.ReadFile(f.order)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, usagef("--order: %v", quotePath(err))
			}
			return nil, nil, fmt.Errorf("read order: %w", quotePath(err))
		}
		if order, src, err = config.DecodeOrder(f.order, data); err != nil {
			return nil, nil, err
		}
	}
	set := func(flag, path string, apply func()) {
		if fs.Changed(flag) {
			apply()
			src.SetFlag(path, "--"+flag)
		}
	}
	set("hostname", "hostname", func() { order.Hostname = f.hostname })
	set("instance-id", "instance_id", func() { order.InstanceID = f.instanceID })
	set("admin-user", "admin_user", func() { order.AdminUser = f.adminUser })
	if fs.Changed("ssh-port") {
		// The same parser as ssh_port in an order and ssh.port in a
		// profile: one spelling of a port everywhere.
		port, reason := config.ParsePort(f.sshPort)
		if reason != "" {
			return nil, nil, &config.InputError{Errs: []*config.FieldError{{File: "--ssh-port", Path: "ssh_port", Reason: reason}}}
		}
		order.SSHPort = port
		src.SetFlag("ssh_port", "--ssh-port")
	}
	if len(f.allow) > 0 {
		order.Allow = f.allow
		for i := range f.allow {
			src.SetFlag(fmt.Sprintf("allow[%d]", i), "--allow")
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
			return nil, nil, err
		}
		for i := range f.keys {
			src.SetFlag(fmt.Sprintf("ssh_keys[%d]", len(keys)+i), "--ssh-key")
		}
		order.SSHKeys = append(keys, f.keys...)
	}
	if f.order == "" {
		src.SetFlag("hostname", "--hostname")
		src.SetFlag("ssh_keys", "--ssh-key")
	}
	return order, src, nil
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

// loadAgent finds the agent binary and describes how the machine gets it.
func (f *inputFlags) loadAgent(in *inputs) error {
	kind, url, _ := strings.Cut(f.agent, "=")
	switch render.AgentKind(kind) {
	case render.AgentSeed, render.AgentEmbed:
		if url != "" {
			return usagef("--agent: %s takes no value", kind)
		}
	case render.AgentURL:
		if reason := checkAgentURL(url); reason != "" {
			return usagef("--agent: %s", reason)
		}
	default:
		return usagef("--agent: %q is not seed, url=URL or embed", f.agent)
	}
	if f.arch != "amd64" && f.arch != "arm64" {
		return usagef("--arch: %q is not amd64 or arm64", f.arch)
	}
	if render.AgentKind(kind) == render.AgentURL && f.agentSHA256 != "" && f.agentBinary == "" {
		in.agent = render.Agent{Kind: render.AgentURL, Arch: f.arch, URL: url, SHA256: strings.ToLower(f.agentSHA256)}
		return nil
	}
	path, err := agentPath(f.agentBinary, f.arch)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read agent binary: %w", err)
	}
	in.agentBinary = bin
	in.agent = render.NewAgent(render.AgentKind(kind), f.arch, bin, url)
	if f.agentSHA256 != "" && !strings.EqualFold(f.agentSHA256, in.agent.SHA256) {
		return usagef("--agent-sha256: %s does not match %s (sha256 %s)", f.agentSHA256, path, in.agent.SHA256)
	}
	return nil
}

// agentPath finds the agent: --agent-binary, else $HARDBAKE_AGENT_DIR, else
// beside the hardbake executable (where `make build` puts both).
func agentPath(explicit, arch string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	name := render.SeedName(arch)
	var tried []string
	if dir := os.Getenv("HARDBAKE_AGENT_DIR"); dir != "" {
		tried = append(tried, filepath.Join(dir, name))
	}
	if exe, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), name))
	}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("agent binary %s not found (looked in: %s); run `make build` or pass --agent-binary", name, strings.Join(tried, ", "))
}

// checkAgentURL allows https, and plain http for a local mirror (the pinned
// sha256 protects the binary either way), with config's URL rules: lower-case
// scheme, a valid host and port, no credentials.
func checkAgentURL(u string) string {
	if reason := config.CheckAgentURL(u); reason != "" {
		return "url=" + reason
	}
	return ""
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
