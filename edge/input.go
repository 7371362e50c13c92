package edge

import (
	"fmt"
	"net/netip"
	"sort"
)

// Input is what the host firewall of one machine allows, which is exactly
// what its edge firewall must allow. Build it with edge/fromconfig from the
// profile, the order and the compiled plan, so the SSH port is the plan's.
type Input struct {
	Profile    string
	InstanceID string
	// SSHPort is the plan's SSH port (ssh.port, the order's ssh_port, or the
	// random port derived from the instance-id).
	SSHPort int
	// SSHPath is the key path that set the SSH port, for error messages.
	SSHPath Origin
	// Services are the ports besides SSH, one per port/protocol, sorted by
	// port then protocol.
	Services []Service
	// ICMP: the host firewall accepts ICMP errors and rate-limited echo
	// (templates/files/nftables.conf.tmpl). The profile has no key to turn
	// it off, so it is always true today; the edge carries it because path
	// MTU discovery breaks without it.
	ICMP bool
	// HostFirewallOff: the profile's firewall.enabled is false. The edge
	// then still allows only SSH and the declared services, with a warning.
	HostFirewallOff bool
}

// Origin names an input value: which document (profile or order) and the
// key path inside it, e.g. {Doc: "profile", Path: "firewall.services[1].sources[0]"}.
type Origin struct {
	Doc  string // DocProfile or DocOrder
	Path string
}

// Documents an Origin can name.
const (
	DocProfile = "profile"
	DocOrder   = "order"
)

func (o Origin) String() string {
	if o.Path == "" {
		return o.Doc
	}
	return o.Doc + " " + o.Path
}

// Service is one allowed port/protocol with where it comes from.
type Service struct {
	Port  int
	Proto string // tcp or udp
	// Any: reachable from anywhere (a service without sources, or an order's
	// allow entry). Sources are then empty.
	Any bool
	// Sources are the networks allowed to reach the port, in input order,
	// deduplicated.
	Sources []Source
	// Origin is the first input entry that declared the port.
	Origin Origin
}

// Source is one allowed source network.
type Source struct {
	Prefix netip.Prefix
	Origin Origin
}

// V4 and V6 return the service's sources of one family.
func (s Service) V4() []Source { return s.family(true) }

// V6 returns the service's IPv6 sources.
func (s Service) V6() []Source { return s.family(false) }

func (s Service) family(v4 bool) []Source {
	var out []Source
	for _, src := range s.Sources {
		if src.Prefix.Addr().Is4() == v4 {
			out = append(out, src)
		}
	}
	return out
}

// Validate checks an Input built by hand (tests, other front ends): ports in
// range, known protocols, canonical prefixes, sorted unique services.
func (in *Input) Validate() error {
	if in.SSHPort < 1 || in.SSHPort > 65535 {
		return fmt.Errorf("edge input: ssh port %d out of range", in.SSHPort)
	}
	for i, s := range in.Services {
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("edge input: %s: port %d out of range", s.Origin, s.Port)
		}
		if s.Proto != "tcp" && s.Proto != "udp" {
			return fmt.Errorf("edge input: %s: protocol %q is not tcp or udp", s.Origin, s.Proto)
		}
		if s.Any && len(s.Sources) > 0 {
			return fmt.Errorf("edge input: %s: a service open to all carries no sources", s.Origin)
		}
		if !s.Any && len(s.Sources) == 0 {
			return fmt.Errorf("edge input: %s: a restricted service needs sources", s.Origin)
		}
		for _, src := range s.Sources {
			if !src.Prefix.IsValid() || src.Prefix != src.Prefix.Masked() {
				return fmt.Errorf("edge input: %s: %q is not a canonical network", src.Origin, src.Prefix)
			}
		}
		if i > 0 && !serviceLess(in.Services[i-1], s) {
			return fmt.Errorf("edge input: services not sorted and unique at %s", s.Origin)
		}
	}
	return nil
}

func serviceLess(a, b Service) bool {
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.Proto < b.Proto
}

// SortServices puts services in the order Input requires.
func SortServices(s []Service) {
	sort.SliceStable(s, func(i, j int) bool { return serviceLess(s[i], s[j]) })
}
