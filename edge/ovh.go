package edge

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// OVH Network Firewall limits.
const (
	OVHMaxRules     = 20 // rules per IP
	OVHDenySequence = 19 // the final deny takes the last sequence
)

// OVHRule is one rule as POST /ip/{ip}/firewall/{ipOnFirewall}/rule takes it.
type OVHRule struct {
	Sequence        int           `json:"sequence"`
	Action          string        `json:"action"`   // permit or deny
	Protocol        string        `json:"protocol"` // ah, esp, gre, icmp, ipv4, tcp, udp
	Source          string        `json:"source,omitempty"`
	DestinationPort int           `json:"destinationPort,omitempty"`
	SourcePort      int           `json:"sourcePort,omitempty"`
	TCPOption       *OVHTCPOption `json:"tcpOption,omitempty"`
}

// OVHTCPOption matches established or syn TCP segments.
type OVHTCPOption struct {
	Option    string `json:"option"`
	Fragments bool   `json:"fragments"`
}

// OVHFirewallCreate is the body of POST /ip/{ip}/firewall.
type OVHFirewallCreate struct {
	IPOnFirewall string `json:"ipOnFirewall"`
}

// OVHFirewallUpdate is the body of PUT /ip/{ip}/firewall/{ipOnFirewall}.
type OVHFirewallUpdate struct {
	Enabled bool `json:"enabled"`
}

// ovhSlot is a rule with the input value that caused it, so a rule that
// does not fit can be blamed on that value.
type ovhSlot struct {
	rule   OVHRule
	origin Origin
}

// OVHRules returns the Network Firewall rules for in: a permit of
// established TCP first (the edge is stateless: replies to the machine's own
// connections), permits of UDP replies from the policy's source ports, ICMP,
// SSH, each service (once per IPv4 source when restricted), and a final deny
// of ipv4 at sequence 19. First match wins. warnings say what the edge cannot
// filter (IPv6).
func OVHRules(in *Input, pol *Policy) (rules []OVHRule, warnings []string, err error) {
	var slots []ovhSlot
	add := func(o Origin, r OVHRule) { slots = append(slots, ovhSlot{r, o}) }
	add(Origin{Doc: DocProfile, Path: "firewall"}, OVHRule{Action: "permit", Protocol: "tcp", TCPOption: &OVHTCPOption{Option: "established"}})
	for i, port := range pol.UDPReplyPorts() {
		add(Origin{Doc: DocProfile, Path: fmt.Sprintf("edge.ovh.udpReplyPorts[%d]", i)}, OVHRule{Action: "permit", Protocol: "udp", SourcePort: port})
	}
	if in.ICMP {
		add(Origin{Doc: DocProfile, Path: "firewall"}, OVHRule{Action: "permit", Protocol: "icmp"})
	}
	add(in.SSHPath, OVHRule{Action: "permit", Protocol: "tcp", DestinationPort: in.SSHPort})
	var l issues
	var v6 []string
	for _, s := range in.Services {
		if s.Any {
			add(s.Origin, OVHRule{Action: "permit", Protocol: s.Proto, DestinationPort: s.Port})
			continue
		}
		for _, src := range s.V4() {
			add(src.Origin, OVHRule{Action: "permit", Protocol: s.Proto, Source: src.Prefix.String(), DestinationPort: s.Port})
		}
		for _, src := range s.V6() {
			if pol.IPv6Mode() == IPv6Refuse {
				l.add(src.Origin, codeIPv6Unfiltered, fmt.Sprintf("IPv6 source %s: the OVHcloud Network Firewall filters IPv4 only and edge.ipv6 is refuse", src.Prefix))
				continue
			}
			v6 = append(v6, fmt.Sprintf("%s/%d from %s (%s)", s.Proto, s.Port, src.Prefix, src.Origin))
		}
	}
	if len(slots) > OVHDenySequence {
		over := slots[OVHDenySequence]
		l.add(over.origin, codeOverLimit, fmt.Sprintf("needs OVHcloud Network Firewall rule %d of %d: the edge takes at most %d rules per IP (sequence 0–%d), and this profile and order need %d (%s) plus the final deny",
			OVHDenySequence+1, len(slots)+1, OVHMaxRules, OVHMaxRules-1, len(slots), ovhBreakdown(in, pol)))
	}
	if err := l.err(); err != nil {
		return nil, nil, err
	}
	for i, s := range slots {
		s.rule.Sequence = i
		rules = append(rules, s.rule)
	}
	rules = append(rules, OVHRule{Sequence: OVHDenySequence, Action: "deny", Protocol: "ipv4"})

	open := []string{fmt.Sprintf("tcp/%d (ssh)", in.SSHPort)}
	for _, s := range in.Services {
		if s.Any {
			open = append(open, fmt.Sprintf("%s/%d", s.Proto, s.Port))
		}
	}
	warnings = append(warnings, "ovh: the Network Firewall filters IPv4 only: over IPv6 only the host firewall guards "+strings.Join(open, ", "))
	if len(v6) > 0 {
		warnings = append(warnings, "ovh: IPv6 services the edge cannot filter (edge.ipv6 is warn): "+strings.Join(v6, "; "))
	}
	return rules, warnings, nil
}

func ovhBreakdown(in *Input, pol *Policy) string {
	n := 0
	for _, s := range in.Services {
		if s.Any {
			n++
		} else {
			n += len(s.V4())
		}
	}
	parts := []string{"1 established", fmt.Sprintf("%d UDP reply ports", len(pol.UDPReplyPorts()))}
	if in.ICMP {
		parts = append(parts, "1 ICMP")
	}
	parts = append(parts, "1 SSH", fmt.Sprintf("%d for services", n))
	return strings.Join(parts, ", ")
}

func buildOVH(doc *Document, in *Input, pol *Policy, opts Options) error {
	ip, onFW := "{ip}", "{ipOnFirewall}"
	if opts.IP.IsValid() {
		if !opts.IP.Is4() {
			return &InputError{Issues: []Issue{{Origin: Origin{Doc: DocFlag, Path: "--ip"}, Code: codeInvalidAddress,
				Reason: fmt.Sprintf("%s is not IPv4: the OVHcloud Network Firewall lives on the machine's IPv4 address", opts.IP)}}}
		}
		ip, onFW = OVHIPBlock(opts.IP), opts.IP.String()
	}
	rules, warnings, err := OVHRules(in, pol)
	if err != nil {
		return err
	}
	doc.Warnings = append(doc.Warnings, warnings...)
	doc.Rules = RuleCount{Used: len(rules), Limit: OVHMaxRules, Unit: "rules per IP"}
	base := "/ip/" + ip + "/firewall"
	doc.Requests = append(doc.Requests, Request{Method: "POST", Path: base, Body: OVHFirewallCreate{IPOnFirewall: onFW},
		Note: "create the firewall on the IP (skipped when it exists)"})
	for _, r := range rules {
		doc.Requests = append(doc.Requests, Request{Method: "POST", Path: base + "/" + onFW + "/rule", Body: r,
			Note: "then poll GET …/rule/" + fmt.Sprint(r.Sequence) + " until state is ok"})
	}
	doc.Requests = append(doc.Requests, Request{Method: "PUT", Path: base + "/" + onFW, Body: OVHFirewallUpdate{Enabled: true},
		Note: "enable once every rule is ok"})
	return nil
}

// OVHIPBlock is the {ip} path parameter for a single address: its /32
// block, path-escaped.
func OVHIPBlock(a netip.Addr) string {
	return url.PathEscape(netip.PrefixFrom(a, a.BitLen()).String())
}
