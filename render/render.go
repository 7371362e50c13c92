// Package render is hardbake's translation step: a validated profile and
// machine (package config) in, the agent's plan and the cloud-init documents
// out. It is pure and deterministic: same input, byte-identical output.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
)

// AgentKind says how the machine gets the first-boot agent.
type AgentKind string

const (
	AgentSeed  AgentKind = "seed"  // from the cidata seed device
	AgentURL   AgentKind = "url"   // downloaded at first boot
	AgentEmbed AgentKind = "embed" // inside the user-data, gzip+base64
)

// Agent describes the agent binary the user-data installs. The user-data
// pins its sha256 whatever the source.
type Agent struct {
	Kind   AgentKind
	Arch   string // amd64 or arm64
	URL    string // AgentURL only
	SHA256 string // lowercase hex
	Binary []byte // AgentEmbed only
}

// SeedName is the agent's file name on a seed for arch.
func SeedName(arch string) string { return "hardbake-firstboot-linux-" + arch }

// Source is what the launcher is told to fetch: a seed file name or a URL.
func (a Agent) Source() string {
	if a.Kind == AgentURL {
		return a.URL
	}
	return SeedName(a.Arch)
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// NewAgent describes a binary the caller has read; url is used for AgentURL.
func NewAgent(kind AgentKind, arch string, binary []byte, url string) Agent {
	sum := sha256.Sum256(binary)
	a := Agent{Kind: kind, Arch: arch, URL: url, SHA256: hex.EncodeToString(sum[:])}
	if kind == AgentEmbed {
		a.Binary = binary
	}
	return a
}

func (a Agent) validate() error {
	switch a.Kind {
	case AgentSeed, AgentEmbed:
	case AgentURL:
		if a.URL == "" {
			return fmt.Errorf("agent: url mode needs a URL")
		}
	default:
		return fmt.Errorf("agent: unknown source %q (want seed, url=URL or embed)", a.Kind)
	}
	if a.Arch != "amd64" && a.Arch != "arm64" {
		return fmt.Errorf("agent: unknown arch %q (want amd64 or arm64)", a.Arch)
	}
	if !sha256RE.MatchString(a.SHA256) {
		return fmt.Errorf("agent: sha256 %q is not 64 lowercase hex digits", a.SHA256)
	}
	return nil
}

// Options select optional outputs.
type Options struct {
	NetworkConfig bool
	// Report, when set, tells the machine where to send its report and
	// with which key (an order of hardbaked).
	Report *ReportEndpoint
}

// ReportEndpoint is where the machine sends its signed report: URL ends
// in the order id (POST /report/{order_id} in docs/hardbaked.md), Key is
// the order's report key as 64 hex digits.
type ReportEndpoint struct {
	URL string
	Key string
}

var (
	reportKeyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	orderIDRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// OrderID is the last path segment of the URL, which the signature binds.
func (e ReportEndpoint) OrderID() string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// Validate checks the URL and key shapes.
func (e ReportEndpoint) Validate() error {
	u, err := url.Parse(e.URL)
	switch {
	case err != nil:
		return fmt.Errorf("report URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.User != nil, u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("report URL %q: want http(s)://HOST[:PORT]/PATH/ORDER_ID, no user, query or fragment", e.URL)
	case !orderIDRE.MatchString(e.OrderID()):
		return fmt.Errorf("report URL %q: its last path segment (the order id) must be 1–128 of A-Z a-z 0-9 . _ -", e.URL)
	case !reportKeyRE.MatchString(e.Key):
		return fmt.Errorf("report key: want 64 lowercase hex digits")
	}
	return nil
}

// Result is everything one render produces.
type Result struct {
	Plan          *plan.Plan
	PlanJSON      []byte
	PlanDigest    string
	SSHPort       int
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte // nil unless asked for
	Warnings      []string
}

// Compile renders one machine. p and m must come from config's decoders,
// which validated every value.
func Compile(p *config.Profile, m *config.Machine, a Agent, opts Options) (*Result, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	if opts.Report != nil {
		if err := opts.Report.Validate(); err != nil {
			return nil, err
		}
	}
	pl, err := buildPlan(p, m)
	if err != nil {
		return nil, err
	}
	planJSON, err := EncodePlan(pl)
	if err != nil {
		return nil, err
	}
	res := &Result{Plan: pl, PlanJSON: planJSON, PlanDigest: PlanDigest(planJSON), SSHPort: pl.SSH.Port}
	if res.UserData, err = userData(p, m, a, planJSON, res.PlanDigest, opts.Report); err != nil {
		return nil, err
	}
	if res.MetaData, err = metaDataDoc(m); err != nil {
		return nil, err
	}
	if opts.NetworkConfig {
		if res.NetworkConfig, err = networkConfigDoc(); err != nil {
			return nil, err
		}
	}
	res.Warnings = append(SizeWarnings(len(res.UserData)), profileWarnings(p)...)
	return res, nil
}

// profileWarnings name what a valid profile leaves undone that its user
// would want to know before ordering machines from it.
func profileWarnings(p *config.Profile) []string {
	var w []string
	if m := p.Updates.Mirror; m != nil && m.SecurityURL == "" &&
		!slices.ContainsFunc(m.Suites, func(s string) bool { return strings.HasSuffix(s, "-security") }) {
		w = append(w, "updates.mirror: no security source (neither securityURL nor a -security suite): the mirror replaces the image's sources, so the machine gets no security updates")
	}
	return w
}

// Provider limits on user-data size.
var sizeLimits = []struct {
	name  string
	bytes int
	b64   bool
}{
	{"AWS EC2 (16 KB)", 16 * 1024, false},
	{"Hetzner Cloud (32 KiB)", 32 * 1024, false},
	{"OpenStack / OVH Public Cloud (65,535 bytes after base64)", 65535, true},
	{"Azure (64 KiB)", 64 * 1024, false},
	{"GCP (256 KiB)", 256 * 1024, false},
}

// SizeWarnings names the common provider limits a user-data of n bytes exceeds.
func SizeWarnings(n int) []string {
	var w []string
	for _, l := range sizeLimits {
		size := n
		if l.b64 {
			size = (n + 2) / 3 * 4
		}
		if size > l.bytes {
			w = append(w, fmt.Sprintf("user-data is %d bytes: over the limit of %s", n, l.name))
		}
	}
	return w
}
