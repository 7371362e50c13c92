package edge_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"hardbake.dev/hardbake/edge"
)

// randomInput is a valid Input with up to 12 services, some restricted to
// IPv4 and IPv6 networks.
func randomInput(r *rand.Rand) *edge.Input {
	in := &edge.Input{Profile: "p", InstanceID: "i", SSHPort: 49152 + r.IntN(16384), ICMP: r.IntN(4) > 0}
	seen := map[string]bool{}
	for range r.IntN(13) {
		s := edge.Service{Port: 1 + r.IntN(2000), Proto: []string{"tcp", "udp"}[r.IntN(2)]}
		if k := fmt.Sprint(s.Port, s.Proto); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		s.Origin = edge.Origin{Doc: edge.DocProfile, Path: fmt.Sprintf("firewall.services[%d]", len(in.Services))}
		if n := r.IntN(4); n == 0 {
			s.Any = true
		} else {
			for j := range n {
				var p netip.Prefix
				if r.IntN(3) == 0 {
					p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(j), byte(r.IntN(256))}), 48)
				} else {
					p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(j), byte(r.IntN(256)), 0}), 24)
				}
				s.Sources = append(s.Sources, edge.Source{Prefix: p, Origin: edge.Origin{Doc: edge.DocProfile, Path: fmt.Sprintf("%s.sources[%d]", s.Origin.Path, j)}})
			}
		}
		in.Services = append(in.Services, s)
	}
	edge.SortServices(in.Services)
	return in
}

// TestOVHProperties: for random inputs, either the rules fit (≤ 20,
// sequences unique and ascending, established first, deny of ipv4 at 19,
// every allowed port and IPv4 source present) or the build is refused with
// an input error.
func TestOVHProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 500 {
		in := randomInput(r)
		if err := in.Validate(); err != nil {
			t.Fatalf("generator made an invalid input: %v", err)
		}
		need := 4 // established, 2 UDP replies, SSH
		if in.ICMP {
			need++
		}
		for _, s := range in.Services {
			if s.Any {
				need++
			} else {
				need += len(s.V4())
			}
		}
		rules, _, err := edge.OVHRules(in, nil)
		if need > 19 {
			var ie *edge.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("case %d: %d allows accepted (err %v)", i, need, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if len(rules) != need+1 || rules[0].TCPOption == nil || rules[0].TCPOption.Option != "established" {
			t.Fatalf("case %d: %d rules for %d allows, first %+v", i, len(rules), need, rules[0])
		}
		last := rules[len(rules)-1]
		if last.Sequence != 19 || last.Action != "deny" || last.Protocol != "ipv4" {
			t.Fatalf("case %d: last rule %+v", i, last)
		}
		for j := 1; j < len(rules); j++ {
			if rules[j].Sequence <= rules[j-1].Sequence {
				t.Fatalf("case %d: sequences not ascending", i)
			}
		}
		has := func(proto, src string, port int) bool {
			for _, rl := range rules {
				if rl.Action == "permit" && rl.Protocol == proto && rl.Source == src && rl.DestinationPort == port {
					return true
				}
			}
			return false
		}
		if !has("tcp", "", in.SSHPort) {
			t.Fatalf("case %d: no SSH rule", i)
		}
		for _, s := range in.Services {
			if s.Any && !has(s.Proto, "", s.Port) {
				t.Fatalf("case %d: %s/%d missing", i, s.Proto, s.Port)
			}
			for _, src := range s.V4() {
				if !has(s.Proto, src.Prefix.String(), s.Port) {
					t.Fatalf("case %d: %s/%d from %s missing", i, s.Proto, s.Port, src.Prefix)
				}
			}
		}
		for _, p := range edge.Providers() {
			a, err1 := edge.Build(p, in, nil, nil, edge.Options{})
			b, err2 := edge.Build(p, in, nil, nil, edge.Options{})
			ea, _ := edge.Encode(a)
			eb, _ := edge.Encode(b)
			if err1 != nil || err2 != nil || string(ea) != string(eb) {
				t.Fatalf("case %d %s: builds differ or fail: %v %v", i, p, err1, err2)
			}
		}
	}
}
