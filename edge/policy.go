package edge

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
)

// Providers edge documents exist for, in the order documents list them.
const (
	ProviderOVH          = "ovh"
	ProviderHetzner      = "hetzner"
	ProviderDigitalOcean = "digitalocean"
)

// Providers lists every provider name Build accepts.
func Providers() []string { return []string{ProviderDigitalOcean, ProviderHetzner, ProviderOVH} }

// IPv6 policies: what to do with a service reachable over IPv6 where the
// provider's edge cannot filter IPv6 (the OVHcloud Network Firewall is IPv4 only).
const (
	IPv6Warn   = "warn"   // emit the document with a warning naming the services
	IPv6Refuse = "refuse" // refuse the order: an IPv6 service would bypass the edge
)

// DefaultOVHUDPReplyPorts are the UDP source ports whose replies the
// stateless OVH edge lets back in: DNS (53) and NTP (123). Without them the
// machine cannot resolve names (apt fails) or keep its clock.
var defaultOVHUDPReplyPorts = []int{53, 123}

// Policy is the profile's `edge:` section: which providers to emit edge
// firewall rules for and how strict to be about IPv6. The zero value emits
// for any provider asked, with warnings for unfiltered IPv6.
type Policy struct {
	Providers []string   `yaml:"providers" json:"providers,omitempty" doc:"Providers whose edge firewall mirrors the host firewall: ovh, hetzner, digitalocean. Empty: any provider asked for."`
	IPv6      string     `yaml:"ipv6" json:"ipv6,omitempty" doc:"Where the edge cannot filter IPv6 (ovh): warn (emit with a warning naming the services) or refuse (refuse a service with IPv6 sources)." default:"warn" enum:"warn,refuse"`
	OVH       *OVHPolicy `yaml:"ovh" json:"ovh,omitempty" doc:"OVHcloud Network Firewall settings."`
}

// OVHPolicy tunes the stateless OVH edge.
type OVHPolicy struct {
	UDPReplyPorts []int `yaml:"udpReplyPorts" json:"udpReplyPorts,omitempty" doc:"UDP source ports whose replies are let in (the edge is stateless: replies to the machine's own DNS and NTP queries need a rule each). [] lets none in." default:"[53, 123]"`
}

// IPv6Mode returns the IPv6 policy with its default.
func (p *Policy) IPv6Mode() string {
	if p == nil || p.IPv6 == "" {
		return IPv6Warn
	}
	return p.IPv6
}

// UDPReplyPorts returns the OVH reply ports with their default. An explicit
// empty list means none.
func (p *Policy) UDPReplyPorts() []int {
	if p == nil || p.OVH == nil || p.OVH.UDPReplyPorts == nil {
		return slices.Clone(defaultOVHUDPReplyPorts)
	}
	return slices.Clone(p.OVH.UDPReplyPorts)
}

// Wants reports whether the policy allows emitting for provider.
func (p *Policy) Wants(provider string) bool {
	return p == nil || len(p.Providers) == 0 || slices.Contains(p.Providers, provider)
}

// Validate checks the section found at path (e.g. "edge") and returns one
// Issue per problem, each naming its key path.
func (p *Policy) Validate(path string) []Issue {
	var l issues
	if p == nil {
		return nil
	}
	at := func(sub string) Origin { return Origin{Doc: DocProfile, Path: path + sub} }
	seen := map[string]bool{}
	for i, name := range p.Providers {
		sub := fmt.Sprintf(".providers[%d]", i)
		switch {
		case !slices.Contains(Providers(), name):
			l.add(at(sub), codeInvalidChoice, fmt.Sprintf("unknown provider %q (want ovh, hetzner or digitalocean)", name))
		case seen[name]:
			l.add(at(sub), codeDuplicateItem, fmt.Sprintf("provider %q listed twice", name))
		}
		seen[name] = true
	}
	if p.IPv6 != "" && p.IPv6 != IPv6Warn && p.IPv6 != IPv6Refuse {
		l.add(at(".ipv6"), codeInvalidChoice, fmt.Sprintf("must be warn or refuse, not %q", p.IPv6))
	}
	if p.OVH != nil {
		ports := map[int]bool{}
		for i, port := range p.OVH.UDPReplyPorts {
			sub := fmt.Sprintf(".ovh.udpReplyPorts[%d]", i)
			switch {
			case port < 1 || port > 65535:
				l.add(at(sub), codeInvalidPort, fmt.Sprintf("must be 1–65535, not %d", port))
			case ports[port]:
				l.add(at(sub), codeDuplicateItem, fmt.Sprintf("port %d listed twice", port))
			}
			ports[port] = true
		}
	}
	return l
}

// Backup providers.
const BackupOVHVPS = "ovh-vps"

// BackupPolicy is the profile's `backup:` section: the provider-side backup
// of every machine built from the profile. hardbaked carries it out where it
// has credentials (edge/ovh: Backup); without them the policy is rendered for
// the provider's own tooling.
type BackupPolicy struct {
	Provider string `yaml:"provider" json:"provider" doc:"Where the backups live: ovh-vps (OVHcloud VPS automated backup and snapshot)." required:"true" enum:"ovh-vps"`
	// Automated is a pointer so an absent key takes the default.
	Automated *bool  `yaml:"automated" json:"automated,omitempty" doc:"Keep the provider's daily automated backup on (on OVHcloud a paid option that must be subscribed; hardbake checks it and sets its time)." default:"true"`
	Time      string `yaml:"time" json:"time,omitempty" doc:"Daily time of the automated backup, HH:MM (24 h, the provider's time zone)." default:"03:00"`
	// SnapshotWhenHardened: the snapshot is the known-good recovery point of
	// the freshly hardened machine, so it is taken only after the agent
	// reports hardened.
	SnapshotWhenHardened *bool `yaml:"snapshotWhenHardened" json:"snapshotWhenHardened,omitempty" doc:"Take a provider snapshot once the agent reports the machine hardened (OVHcloud keeps one snapshot per VPS: it replaces the previous one)." default:"true"`
}

var hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// AutomatedOn, BackupTime and SnapshotOn return the values with defaults.
func (b *BackupPolicy) AutomatedOn() bool { return b.Automated == nil || *b.Automated }

// BackupTime is the daily time as HH:MM.
func (b *BackupPolicy) BackupTime() string {
	if b.Time == "" {
		return "03:00"
	}
	return b.Time
}

// SnapshotOn reports whether a snapshot follows the hardened report.
func (b *BackupPolicy) SnapshotOn() bool {
	return b.SnapshotWhenHardened == nil || *b.SnapshotWhenHardened
}

// Validate checks the section found at path (e.g. "backup").
func (b *BackupPolicy) Validate(path string) []Issue {
	var l issues
	if b == nil {
		return nil
	}
	at := func(sub string) Origin { return Origin{Doc: DocProfile, Path: path + sub} }
	switch b.Provider {
	case BackupOVHVPS:
	case "":
		l.add(at(".provider"), codeRequired, "required (ovh-vps)")
	default:
		l.add(at(".provider"), codeInvalidChoice, fmt.Sprintf("unknown backup provider %q (want ovh-vps)", b.Provider))
	}
	if b.Time != "" && !hhmmRE.MatchString(b.Time) {
		l.add(at(".time"), codeInvalidTime, fmt.Sprintf("must be HH:MM (00:00–23:59), not %s", strconv.Quote(b.Time)))
	}
	if b.Time != "" && !b.AutomatedOn() {
		l.add(at(".time"), codeIgnoredField, "set, but automated is false: there is no automated backup to schedule")
	}
	return l
}
