package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// HetznerMaxEffectiveRules is the Hetzner Cloud limit of effective rules per
// firewall (docs.hetzner.com/cloud/firewalls/faq: "up to 500 (effective)
// rules"). A rule counts once per source network, the conservative reading.
const HetznerMaxEffectiveRules = 500

var anyV4V6 = []string{"0.0.0.0/0", "::/0"}

// HetznerRule is one Hetzner Cloud Firewall rule as the API takes it.
type HetznerRule struct {
	Direction   string   `json:"direction"` // in
	Protocol    string   `json:"protocol"`  // tcp, udp, icmp
	Port        string   `json:"port,omitempty"`
	SourceIPs   []string `json:"source_ips"`
	Description string   `json:"description,omitempty"`
}

// HetznerFirewallCreate is the body of POST /v1/firewalls.
type HetznerFirewallCreate struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Rules  []HetznerRule     `json:"rules"`
}

// HetznerSetRules is the body of POST /v1/firewalls/{id}/actions/set_rules.
type HetznerSetRules struct {
	Rules []HetznerRule `json:"rules"`
}

// HetznerApplyTo is the body of POST /v1/firewalls/{id}/actions/apply_to_resources.
type HetznerApplyTo struct {
	ApplyTo []HetznerResource `json:"apply_to"`
}

// HetznerResource names a server by id.
type HetznerResource struct {
	Type   string         `json:"type"`
	Server map[string]any `json:"server"`
}

// HetznerLabels mark the firewalls hardbake manages.
func HetznerLabels() map[string]string { return map[string]string{"managed-by": "hardbake"} }

// FirewallName is the provider-side firewall name of one machine: one
// firewall per machine, since the SSH port may differ per machine.
func FirewallName(instanceID string) string {
	name := "hardbake-" + instanceID
	if len(name) > 63 { // keep within the common 63-character name limit
		sum := sha256.Sum256([]byte(instanceID))
		name = name[:54] + "-" + hex.EncodeToString(sum[:])[:8]
	}
	return name
}

// HetznerRules returns the inbound rules for in. The firewall is stateful,
// so replies need no rule; outbound stays open (no outbound rules).
func HetznerRules(in *Input) ([]HetznerRule, error) {
	var rules []HetznerRule
	var l issues
	used := 0
	add := func(o Origin, r HetznerRule) {
		used += len(r.SourceIPs)
		if used > HetznerMaxEffectiveRules {
			l.add(o, codeOverLimit, fmt.Sprintf("needs more than %d effective Hetzner Cloud Firewall rules (a rule counts once per source network)", HetznerMaxEffectiveRules))
		}
		rules = append(rules, r)
	}
	if in.ICMP {
		add(Origin{Doc: DocProfile, Path: "firewall"}, HetznerRule{Direction: "in", Protocol: "icmp", SourceIPs: anyV4V6, Description: "hardbake: icmp"})
	}
	add(in.SSHPath, HetznerRule{Direction: "in", Protocol: "tcp", Port: strconv.Itoa(in.SSHPort), SourceIPs: anyV4V6, Description: "hardbake: ssh"})
	for _, s := range in.Services {
		r := HetznerRule{Direction: "in", Protocol: s.Proto, Port: strconv.Itoa(s.Port), SourceIPs: anyV4V6,
			Description: fmt.Sprintf("hardbake: %s/%d (%s)", s.Proto, s.Port, s.Origin)}
		if !s.Any {
			r.SourceIPs = nil
			for _, src := range s.Sources {
				r.SourceIPs = append(r.SourceIPs, src.Prefix.String())
			}
		}
		add(s.Origin, r)
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	return rules, nil
}

func buildHetzner(doc *Document, in *Input) error {
	rules, err := HetznerRules(in)
	if err != nil {
		return err
	}
	used := 0
	for _, r := range rules {
		used += len(r.SourceIPs)
	}
	doc.Rules = RuleCount{Used: used, Limit: HetznerMaxEffectiveRules, Unit: "effective rules per firewall"}
	name := FirewallName(in.InstanceID)
	doc.Requests = []Request{
		{Method: "POST", Path: "/v1/firewalls", Body: HetznerFirewallCreate{Name: name, Labels: HetznerLabels(), Rules: rules},
			Note: "create when no firewall is named " + name + "; else the next request"},
		{Method: "POST", Path: "/v1/firewalls/{id}/actions/set_rules", Body: HetznerSetRules{Rules: rules},
			Note: "replace the rules of the existing firewall; wait for the action"},
		{Method: "POST", Path: "/v1/firewalls/{id}/actions/apply_to_resources",
			Body: HetznerApplyTo{ApplyTo: []HetznerResource{{Type: "server", Server: map[string]any{"id": "{server_id}"}}}},
			Note: "{server_id}: the server's numeric id; skipped when already applied; wait for the action"},
	}
	return nil
}
