package bake

import (
	"fmt"
	"io"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// Request is one machine to bake.
type Request struct {
	// Profile is a decoded profile (config.DecodeProfile).
	Profile *config.Profile
	// Order is a decoded, not yet resolved order (config.DecodeOrder);
	// nil means an empty one, filled by Overrides alone. Source is where
	// its values came from (nil: none), so errors name file:line:column.
	Order  *config.Order
	Source *config.Source
	// Overrides replace values of the order (the CLI's flags).
	Overrides Overrides
	// Agent says how the machine gets the agent, and which binary.
	Agent AgentRequest
	// Resolved, when set, is used instead of resolving Agent: a service
	// resolves (reads, checks, hashes) each agent once, not per order.
	Resolved *Agent
	// NetworkConfig adds a network-config document (DHCP everywhere).
	NetworkConfig bool
	// Report names the service the machine sends its report to (an order
	// of hardbaked); nil: the report stays on the machine.
	Report *render.ReportEndpoint
	// Images builds the seed images (its WorkDir: where an ISO build
	// makes its short-lived workspace; a tmpfs is fastest).
	Images images.Builder
}

// Overrides are values that replace the order's. Nil pointers and nil
// slices leave the order's value alone. Values are checked by config when
// the order is resolved, exactly as if the order file had held them.
type Overrides struct {
	Hostname   *string
	InstanceID *string
	AdminUser  *string
	SSHPort    *config.PortSpec
	Allow      []string
	SSHKeys    []string
	// Origins names where overridden values came from, by order key path
	// ("hostname", "allow[0]", "ssh_keys[2]"): errors about them name that
	// ("--hostname") instead of a file position.
	Origins map[string]string
}

// Apply writes the overrides into order and records their origins in src.
func (ov Overrides) Apply(order *config.Order, src *config.Source) {
	if ov.Hostname != nil {
		order.Hostname = *ov.Hostname
	}
	if ov.InstanceID != nil {
		order.InstanceID = *ov.InstanceID
	}
	if ov.AdminUser != nil {
		order.AdminUser = *ov.AdminUser
	}
	if ov.SSHPort != nil {
		order.SSHPort = *ov.SSHPort
	}
	if ov.Allow != nil {
		order.Allow = ov.Allow
	}
	if ov.SSHKeys != nil {
		order.SSHKeys = ov.SSHKeys
	}
	for path, origin := range ov.Origins {
		src.SetFlag(path, origin)
	}
}

// Result is one baked machine: the rendered documents, the agent, and the
// files of its seed.
type Result struct {
	*render.Result // UserData, MetaData, NetworkConfig, SSHPort, Warnings, Plan…
	Profile        *config.Profile
	Machine        *config.Machine
	Agent          *Agent
	images         images.Builder
}

// Seed resolves the order against the profile, resolves and checks the
// agent, and renders. Input problems are *config.InputError (with
// positions) or *InputError; nothing is written anywhere.
func Seed(req Request) (*Result, error) {
	order, src := req.Order, req.Source
	if order == nil {
		order = &config.Order{}
	} else {
		cp := *order // the caller's order stays as it was
		order = &cp
	}
	if src == nil {
		src = config.NewSource("")
	}
	req.Overrides.Apply(order, src)
	m, err := order.Resolve(req.Profile, src)
	if err != nil {
		return nil, err
	}
	agent := req.Resolved
	if agent == nil {
		if agent, err = ResolveAgent(req.Agent); err != nil {
			return nil, err
		}
	}
	res, err := render.Compile(req.Profile, m, agent.Agent, render.Options{NetworkConfig: req.NetworkConfig, Report: req.Report})
	if err != nil {
		return nil, err
	}
	return &Result{Result: res, Profile: req.Profile, Machine: m, Agent: agent, images: req.Images}, nil
}

// CheckUserDataSize refuses a user-data larger than max bytes (0: no
// limit), for platforms with a hard limit.
func (r *Result) CheckUserDataSize(max int) error {
	if max > 0 && len(r.UserData) > max {
		return inputErr("--max-user-data", fmt.Sprintf("user-data is %d bytes, over the limit of %d", len(r.UserData), max))
	}
	return nil
}

// Documents are the cloud-init files alone (user-data, meta-data, and
// network-config when asked for): what `hardbake render` writes and what
// NoCloud-Net serves. Mode 0600: user-data may carry secrets.
func (r *Result) Documents() []images.File {
	files := []images.File{
		{Name: "user-data", Data: r.UserData, Mode: 0o600},
		{Name: "meta-data", Data: r.MetaData, Mode: 0o600},
	}
	if r.NetworkConfig != nil {
		files = append(files, images.File{Name: "network-config", Data: r.NetworkConfig, Mode: 0o600})
	}
	return files
}

// SeedFiles are the files of a seed: the documents (0644: the seed is the
// machine's own medium) and, in seed mode, the agent (0755).
func (r *Result) SeedFiles() []images.File {
	var files []images.File
	for _, f := range r.Documents() {
		f.Mode = 0o644
		files = append(files, f)
	}
	if r.Agent.Kind == render.AgentSeed {
		files = append(files, images.File{Name: render.SeedName(r.Agent.Arch), Data: r.Agent.Binary, Mode: 0o755})
	}
	return files
}

// Image builds the seed as an ISO or VFAT image in memory.
func (r *Result) Image(format images.Format) (*images.Image, error) {
	return r.images.Build(format, r.SeedFiles())
}

// WriteSeed builds the seed as an ISO or VFAT image and streams it to w
// (an HTTP response, a buffer). Same input, same bytes as the CLI's file.
func (r *Result) WriteSeed(w io.Writer, format images.Format) (int64, error) {
	img, err := r.Image(format)
	if err != nil {
		return 0, err
	}
	return img.WriteTo(w)
}
