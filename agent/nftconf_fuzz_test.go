package agent

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// FuzzParseNftConf: any input is compiled or refused with an error naming
// nftables.conf, never a panic; what compiles has an input chain, rules
// with expressions, sets only where a lookup refers to them, and a
// report view whose policies are the input chain's.
func FuzzParseNftConf(f *testing.F) {
	f.Add("flush ruleset\ntable inet hardbake {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept comment \"ssh\"\n\t}\n}\n")
	f.Add("table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr { 10.0.0.0/8, 192.0.2.1 } udp dport 53 accept\n\t\tip6 saddr { 2001:db8::/32 } tcp dport 1 accept\n\t}\n}\n")
	f.Fuzz(func(t *testing.T, conf string) {
		p, err := parseNftConf(conf)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "nftables.conf") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		in := p.chain("input")
		if in == nil {
			t.Fatal("accepted without an input chain")
		}
		for _, c := range p.Chains {
			for _, r := range c.Rules {
				lookups := 0
				for _, e := range r.Exprs {
					if exprLike(e) == nil {
						t.Fatalf("line %d: expression %T the verifier cannot decode", r.Line, e)
					}
					if _, ok := e.(*expr.Lookup); ok {
						lookups++
					}
				}
				if (lookups == 1) != (r.Set != nil) || len(r.Exprs) == 0 {
					t.Fatalf("line %d: %d lookups, set %v", r.Line, lookups, r.Set)
				}
			}
		}
		if rs := p.allowed(); rs.PolicyV4 != in.Policy || rs.PolicyV6 != in.Policy {
			t.Fatalf("report policy %+v, chain %s", rs, in.Policy)
		}
		if _, err := replaceMsgs(p); err != nil {
			t.Fatalf("accepted but not encodable: %v", err)
		}
	})
}

// FuzzParsePrefix holds the agent's address parser to net/netip: the same
// inputs accepted, with the same bytes and length.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"192.0.2.0/24", "10.0.0.1", "2001:db8::/32", "::1", "fe80::/10", "1::", "::", "0.0.0.0/0", "1.2.3.4/33", "01.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::8", "::ffff:1.2.3.4", "fe80::1%eth0", "10.0.0.1/8", "2001:db8::/032"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v4 := range []bool{true, false} {
			got, err := parsePrefix(s, v4)
			want, werr := netip.ParsePrefix(s)
			if !strings.Contains(s, "/") {
				a, aerr := netip.ParseAddr(s)
				want, werr = netip.PrefixFrom(a, a.BitLen()), aerr
			}
			ok := werr == nil && want.IsValid() && !strings.Contains(s, "%") && !want.Addr().Is4In6() &&
				want.Addr().Is4() == v4 && want.Bits() > 0 && want.Masked() == want &&
				!strings.Contains(s, ".") == !want.Addr().Is4()
			if ok != (err == nil) {
				t.Fatalf("%q v4=%v: agent %v, netip %v %v", s, v4, err, want, werr)
			}
			if ok && (!bytes.Equal(got.addr, want.Addr().AsSlice()) || got.bits != want.Bits()) {
				t.Fatalf("%q: agent %x/%d, netip %s", s, got.addr, got.bits, want)
			}
		}
	})
}
