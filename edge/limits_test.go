package edge_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/fromconfig"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwbRPMtfACh8WYvLTXcOxfHbAmImwary/CCUrpLChl4 ops@example.com"

// servicesProfile is a profile with n services open to all (ports
// 1000, 1001, …) and one service with the given sources on port 9000.
func servicesProfile(t testing.TB, n int, sources ...string) *config.Profile {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata: {name: limits}\nssh: {port: random}\nfirewall:\n  services:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - {port: %d}\n", 1000+i)
	}
	if len(sources) > 0 {
		fmt.Fprintf(&b, "    - {port: 9000, sources: [%s]}\n", strings.Join(sources, ", "))
	}
	if n == 0 && len(sources) == 0 {
		b.WriteString("    []\n")
	}
	return profileYAML(t, "limits.yaml", b.String())
}

func minimalOrder(t testing.TB, p *config.Profile, extra string) compiled {
	t.Helper()
	return compileOrder(t, p, "order.yaml", []byte("hostname: vps-1\ninstance_id: i-limits\nssh_keys: [\""+testKey+"\"]\n"+extra))
}

func v4Sources(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	return s
}

func TestLimits(t *testing.T) {
	cases := []struct {
		name     string
		provider string
		services int      // open-to-all services
		sources  []string // sources of the restricted service
		pol      *edge.Policy
		origin   string // "" means the build must succeed
		reason   string
		used     int
	}{
		// OVH: 1 established + 2 UDP replies + ICMP + SSH = 5, so 14 services fill sequences 0–18.
		{name: "ovh 20 rules", provider: "ovh", services: 14, used: 20},
		{name: "ovh 21 rules", provider: "ovh", services: 15, origin: "profile firewall.services[14]", reason: "at most 20 rules per IP"},
		{name: "ovh 21 rules by a source", provider: "ovh", services: 13, sources: []string{"192.0.2.0/24", "198.51.100.0/24"},
			origin: "profile firewall.services[13].sources[1]", reason: "needs OVHcloud Network Firewall rule 20 of 21"},
		{name: "ovh IPv6 sources cost no rule", provider: "ovh", services: 13, sources: []string{"192.0.2.0/24", "2001:db8::/32"}, used: 20},
		{name: "ovh fewer reply ports make room", provider: "ovh", services: 16, pol: &edge.Policy{OVH: &edge.OVHPolicy{UDPReplyPorts: []int{}}}, used: 20},
		{name: "ovh reply ports overflow", provider: "ovh", services: 0, pol: &edge.Policy{OVH: &edge.OVHPolicy{UDPReplyPorts: seq(1, 20)}},
			origin: "profile edge.ovh.udpReplyPorts[18]", reason: "at most 20 rules per IP"},
		{name: "ovh IPv6 refused", provider: "ovh", services: 0, sources: []string{"192.0.2.0/24", "2001:db8::/32"}, pol: &edge.Policy{IPv6: edge.IPv6Refuse},
			origin: "profile firewall.services[0].sources[1]", reason: "filters IPv4 only and edge.ipv6 is refuse"},
		{name: "hetzner IPv6 fine", provider: "hetzner", services: 0, sources: []string{"2001:db8::/32"}, pol: &edge.Policy{IPv6: edge.IPv6Refuse}, used: 2 + 2 + 1},
		// Hetzner: ICMP and SSH count 2 each (IPv4 and IPv6 any), a restricted rule once per source.
		{name: "hetzner 500 effective", provider: "hetzner", services: 0, sources: v4Sources(496), used: 500},
		{name: "hetzner 501 effective", provider: "hetzner", services: 0, sources: v4Sources(497),
			origin: "profile firewall.services[0]", reason: "more than 500 effective"},
		// DigitalOcean: 3 outbound + ICMP + SSH = 5, so 45 services reach 50.
		{name: "digitalocean 50 rules", provider: "digitalocean", services: 45, used: 50},
		{name: "digitalocean 51 rules", provider: "digitalocean", services: 46, origin: "profile firewall.services[45]", reason: "at most 50 rules"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := minimalOrder(t, servicesProfile(t, c.services, c.sources...), "")
			doc, err := edge.Build(c.provider, m.input(t), c.pol, nil, edge.Options{})
			if c.origin == "" {
				if err != nil {
					t.Fatal(err)
				}
				if doc.Rules.Used != c.used {
					t.Errorf("rules used %d, want %d", doc.Rules.Used, c.used)
				}
				return
			}
			wantIssue(t, err, c.origin, c.reason)
			// Through fromconfig it is config's exit-2 error naming the file.
			var ce *config.InputError
			if !errors.As(fromconfig.ConfigError(err, "limits.yaml", m.src), &ce) || !strings.HasPrefix(ce.Error(), "limits.yaml: "+strings.TrimPrefix(c.origin, "profile ")) {
				t.Errorf("config error: %v", fromconfig.ConfigError(err, "limits.yaml", m.src))
			}
		})
	}
}

func seq(from, n int) []int {
	var s []int
	for i := range n {
		s = append(s, from+i)
	}
	return s
}

// TestOrderLimitNamesLine: an order's allow entry that overflows OVH is
// reported at the order's file:line:column.
func TestOrderLimitNamesLine(t *testing.T) {
	var allow []string
	for i := range 15 {
		allow = append(allow, fmt.Sprintf("  - %d/udp", 2000+i))
	}
	m := minimalOrder(t, loadProfile(t, "baseline"), "allow:\n"+strings.Join(allow, "\n")+"\n")
	_, err := edge.Build("ovh", m.input(t), nil, nil, edge.Options{})
	wantIssue(t, err, "order allow[14]", "at most 20 rules per IP")
	got := fromconfig.ConfigError(err, "baseline", m.src).Error()
	if want := "order.yaml:19:5: allow[14]: needs OVHcloud Network Firewall rule 20 of 21"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want prefix %q", got, want)
	}
}

func TestFlags(t *testing.T) {
	m := compileExample(t, "baseline", "web-order.yaml")
	_, err := edge.Build("ovh", m.input(t), nil, nil, edge.Options{IP: netip.MustParseAddr("2001:db8::1")})
	wantIssue(t, err, "flag --ip", "not IPv4")
	_, err = edge.Build("aws", m.input(t), nil, nil, edge.Options{})
	wantIssue(t, err, "flag --provider", `unknown provider "aws"`)
	if got := fromconfig.ConfigError(err, "baseline", m.src).Error(); got != `--provider: unknown provider "aws" (want ovh, hetzner or digitalocean)` {
		t.Errorf("flag error reads %q", got)
	}
}

// TestRandomSSHPort: for random ports, every provider's document opens the
// plan's SSH port to all and nothing else names another SSH port.
func TestRandomSSHPort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := loadProfile(t, "baseline")
	for range 40 {
		id := fmt.Sprintf("i-%016x", r.Uint64())
		c := compileOrder(t, p, "order.yaml", []byte("hostname: vps-1\ninstance_id: "+id+"\nssh_keys: [\""+testKey+"\"]\n"))
		port := c.res.Plan.SSH.Port
		if port != c.res.SSHPort || port < 49152 {
			t.Fatalf("%s: plan port %d, result %d", id, port, c.res.SSHPort)
		}
		in := c.input(t)
		for _, provider := range edge.Providers() {
			doc := mustBuild(t, provider, in, nil, nil, edge.Options{})
			if doc.SSHPort != port {
				t.Errorf("%s %s: document ssh_port %d, plan %d", id, provider, doc.SSHPort, port)
			}
			if n := sshRules(t, provider, in, port); n != 1 {
				t.Errorf("%s %s: %d rules open tcp/%d to all, want 1", id, provider, n, port)
			}
		}
	}
}

// sshRules counts the rules that open tcp/port to any source.
func sshRules(t testing.TB, provider string, in *edge.Input, port int) int {
	t.Helper()
	n := 0
	switch provider {
	case "ovh":
		rules, _, err := edge.OVHRules(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Action == "permit" && r.Protocol == "tcp" && r.DestinationPort == port && r.Source == "" {
				n++
			}
		}
	case "hetzner":
		rules, err := edge.HetznerRules(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Protocol == "tcp" && r.Port == strconv.Itoa(port) && strings.Join(r.SourceIPs, ",") == "0.0.0.0/0,::/0" {
				n++
			}
		}
	case "digitalocean":
		fw, err := edge.DigitalOceanFirewall(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range fw.InboundRules {
			if r.Protocol == "tcp" && r.Ports == strconv.Itoa(port) && strings.Join(r.Sources.Addresses, ",") == "0.0.0.0/0,::/0" {
				n++
			}
		}
	}
	return n
}

func TestPolicyValidate(t *testing.T) {
	no := false
	cases := []struct {
		name string
		pol  *edge.Policy
		bak  *edge.BackupPolicy
		want []string // "path: reason fragment"
	}{
		{name: "nil"},
		{name: "good", pol: &edge.Policy{Providers: []string{"ovh", "hetzner"}, IPv6: "refuse", OVH: &edge.OVHPolicy{UDPReplyPorts: []int{53}}},
			bak: &edge.BackupPolicy{Provider: "ovh-vps", Time: "23:59"}},
		{name: "unknown provider", pol: &edge.Policy{Providers: []string{"ovh", "aws", "ovh"}},
			want: []string{`edge.providers[1]: unknown provider "aws"`, `edge.providers[2]: provider "ovh" listed twice`}},
		{name: "ipv6", pol: &edge.Policy{IPv6: "allow"}, want: []string{`edge.ipv6: must be warn or refuse`}},
		{name: "reply ports", pol: &edge.Policy{OVH: &edge.OVHPolicy{UDPReplyPorts: []int{0, 53, 53, 70000}}},
			want: []string{"edge.ovh.udpReplyPorts[0]: must be 1–65535", "edge.ovh.udpReplyPorts[2]: port 53 listed twice", "edge.ovh.udpReplyPorts[3]: must be 1–65535"}},
		{name: "backup provider", bak: &edge.BackupPolicy{}, want: []string{"backup.provider: required"}},
		{name: "backup unknown", bak: &edge.BackupPolicy{Provider: "hetzner"}, want: []string{`backup.provider: unknown backup provider "hetzner"`}},
		{name: "backup time", bak: &edge.BackupPolicy{Provider: "ovh-vps", Time: "24:00"}, want: []string{`backup.time: must be HH:MM`}},
		{name: "backup time without automated", bak: &edge.BackupPolicy{Provider: "ovh-vps", Time: "01:00", Automated: &no}, want: []string{`backup.time: set, but automated is false`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			issues := append(c.pol.Validate("edge"), c.bak.Validate("backup")...)
			var got []string
			for _, is := range issues {
				if is.Origin.Doc != edge.DocProfile {
					t.Errorf("issue %v not in the profile", is)
				}
				got = append(got, is.Origin.Path+": "+is.Reason)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d issues %q, want %q", len(got), got, c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("issue %d: %q, want prefix %q", i, got[i], c.want[i])
				}
			}
			// Build refuses the same policy with the same issues.
			if len(c.want) > 0 {
				m := compileExample(t, "baseline", "web-order.yaml")
				_, err := edge.Build("ovh", m.input(t), c.pol, c.bak, edge.Options{})
				wantIssue(t, err, "profile "+strings.SplitN(c.want[0], ":", 2)[0], "")
			}
		})
	}
}

// TestPlanMismatch: an input whose plan came from other inputs is refused,
// so the edge cannot drift from the host.
func TestPlanMismatch(t *testing.T) {
	a := compileExample(t, "baseline", "web-order.yaml")
	b := compileExample(t, "baseline", "minimal-order.yaml")
	if _, err := fromconfig.Input(a.profile, a.machine, b.res.Plan); err == nil {
		t.Fatal("a plan of another order was accepted")
	}
	mirror := loadProfile(t, "mirror-profile.yaml")
	if _, err := fromconfig.Input(mirror, a.machine, a.res.Plan); err == nil {
		t.Fatal("a plan of another profile was accepted")
	}
}

// TestHostFirewallOff: with firewall.enabled false the plan has no firewall;
// the edge still allows only SSH and the services, and says so.
func TestHostFirewallOff(t *testing.T) {
	p := profileYAML(t, "off.yaml", "apiVersion: hardbake.dev/v1\nkind: Profile\nmetadata: {name: off}\nssh: {port: 2222}\nfirewall:\n  enabled: false\n  services: [{port: 443}]\n")
	c := minimalOrder(t, p, "")
	if c.res.Plan.Firewall != nil {
		t.Fatal("plan has a firewall")
	}
	in := c.input(t)
	if !in.HostFirewallOff || in.SSHPort != 2222 || len(in.Services) != 1 {
		t.Fatalf("input %+v", in)
	}
	for _, provider := range edge.Providers() {
		doc := mustBuild(t, provider, in, nil, nil, edge.Options{})
		if len(doc.Warnings) == 0 || !strings.Contains(doc.Warnings[0], "firewall.enabled is false") {
			t.Errorf("%s: warnings %q", provider, doc.Warnings)
		}
	}
}
