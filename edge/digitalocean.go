package edge

import (
	"fmt"
	"strconv"
	"strings"
)

// DigitalOceanMaxRules is the DigitalOcean limit of rules per Cloud
// Firewall, inbound and outbound together.
const DigitalOceanMaxRules = 50

// DOInboundRule is one inbound rule of a DigitalOcean Cloud Firewall.
type DOInboundRule struct {
	Protocol string    `json:"protocol"`
	Ports    string    `json:"ports,omitempty"`
	Sources  DOTargets `json:"sources"`
}

// DOOutboundRule is one outbound rule.
type DOOutboundRule struct {
	Protocol     string    `json:"protocol"`
	Ports        string    `json:"ports,omitempty"`
	Destinations DOTargets `json:"destinations"`
}

// DOTargets are the addresses a rule matches.
type DOTargets struct {
	Addresses []string `json:"addresses"`
}

// DOFirewall is the body of POST /v2/firewalls.
type DOFirewall struct {
	Name          string           `json:"name"`
	InboundRules  []DOInboundRule  `json:"inbound_rules"`
	OutboundRules []DOOutboundRule `json:"outbound_rules"`
	DropletIDs    []int64          `json:"droplet_ids"`
	Tags          []string         `json:"tags"`
}

// DigitalOceanFirewall returns the firewall for in. A DigitalOcean firewall
// without outbound rules blocks all outbound traffic, so outbound is opened
// explicitly, matching the host firewall's accepting output chain.
func DigitalOceanFirewall(in *Input) (*DOFirewall, error) {
	fw := &DOFirewall{
		// Names take letters, digits, '.' and '-' only.
		Name: strings.ReplaceAll(FirewallName(in.InstanceID), "_", "-"),
		OutboundRules: []DOOutboundRule{
			{Protocol: "icmp", Destinations: DOTargets{anyV4V6}},
			{Protocol: "tcp", Ports: "all", Destinations: DOTargets{anyV4V6}},
			{Protocol: "udp", Ports: "all", Destinations: DOTargets{anyV4V6}},
		},
		DropletIDs: []int64{},
		Tags:       []string{},
	}
	var l issues
	add := func(o Origin, r DOInboundRule) {
		fw.InboundRules = append(fw.InboundRules, r)
		if n := len(fw.InboundRules) + len(fw.OutboundRules); n == DigitalOceanMaxRules+1 {
			l.add(o, codeOverLimit, fmt.Sprintf("needs DigitalOcean Cloud Firewall rule %d: a firewall takes at most %d rules, inbound and outbound together (%d outbound)",
				n, DigitalOceanMaxRules, len(fw.OutboundRules)))
		}
	}
	if in.ICMP {
		add(Origin{Doc: DocProfile, Path: "firewall"}, DOInboundRule{Protocol: "icmp", Sources: DOTargets{anyV4V6}})
	}
	add(in.SSHPath, DOInboundRule{Protocol: "tcp", Ports: strconv.Itoa(in.SSHPort), Sources: DOTargets{anyV4V6}})
	for _, s := range in.Services {
		r := DOInboundRule{Protocol: s.Proto, Ports: strconv.Itoa(s.Port), Sources: DOTargets{anyV4V6}}
		if !s.Any {
			r.Sources.Addresses = nil
			for _, src := range s.Sources {
				r.Sources.Addresses = append(r.Sources.Addresses, src.Prefix.String())
			}
		}
		add(s.Origin, r)
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	return fw, nil
}

func buildDigitalOcean(doc *Document, in *Input) error {
	fw, err := DigitalOceanFirewall(in)
	if err != nil {
		return err
	}
	doc.Rules = RuleCount{Used: len(fw.InboundRules) + len(fw.OutboundRules), Limit: DigitalOceanMaxRules, Unit: "rules per firewall"}
	doc.Requests = []Request{
		{Method: "POST", Path: "/v2/firewalls", Body: fw, Note: "create; to reconcile an existing one, PUT /v2/firewalls/{firewall_id} with the same body"},
		{Method: "POST", Path: "/v2/firewalls/{firewall_id}/droplets", Body: map[string][]string{"droplet_ids": {"{droplet_id}"}},
			Note: "{droplet_id}: the droplet's numeric id"},
	}
	return nil
}
