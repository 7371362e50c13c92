package agent

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"hardbake.dev/hardbake/plan"
)

// nftProgram is the planned nftables.conf turned into what the kernel is
// sent over netlink: one inet table, its base chains and their rules. The
// agent compiles only the statements hardbake's template emits, each the
// way nft 1.0 compiles it (nft --debug=netlink), so `nft list ruleset`
// shows the same rules whichever path loaded them. Anything else is
// refused: the firewall then waits for the package, as without netlink.
type nftProgram struct {
	Table  string
	Chains []nftChain
}

type nftChain struct {
	Name   string
	Hook   string // input, forward, output
	Policy string // accept, drop
	Rules  []nlRule
}

// nlRule is one rule. When Set is not nil the rule's Lookup expression
// refers to an anonymous constant set holding Set's elements.
type nlRule struct {
	Line    int    // line in nftables.conf, for errors
	Text    string // the statement as written
	Exprs   []expr.Any
	Set     *nftSet
	Comment string
	// Port is set for a rule accepting a port from any source (what the
	// report lists and verifyFirewall checks), with the families it covers.
	Port   *plan.Port
	V4, V6 bool
}

type nftSet struct {
	KeyType  nftables.SetDatatype
	Interval bool
	Elements []nftables.SetElement
}

// loopbackIfindex is the kernel's fixed index of "lo" in every network
// namespace (LOOPBACK_IFINDEX); nft resolves iif "lo" to it at load time.
const loopbackIfindex = 1

// chain returns the base chain on hook, or nil.
func (p *nftProgram) chain(hook string) *nftChain {
	for i := range p.Chains {
		if p.Chains[i].Hook == hook {
			return &p.Chains[i]
		}
	}
	return nil
}

// allowed is the ruleset the report shows and verifyFirewall checks: the
// input policy and the ports accepted from any source, per family.
func (p *nftProgram) allowed() ruleset {
	var rs ruleset
	in := p.chain("input")
	if in == nil {
		return rs
	}
	rs.PolicyV4, rs.PolicyV6 = in.Policy, in.Policy
	for _, r := range in.Rules {
		if r.Port == nil {
			continue
		}
		if r.V4 && !allows(rs.V4, r.Port.Port, r.Port.Proto) {
			rs.V4 = append(rs.V4, *r.Port)
		}
		if r.V6 && !allows(rs.V6, r.Port.Port, r.Port.Proto) {
			rs.V6 = append(rs.V6, *r.Port)
		}
	}
	return rs
}

// The agent matches these lines by hand rather than with regexp, which
// alone would add about 200 KB to the agent (measured).

// blockName reads `KEYWORD NAME {` with NAME an nft identifier.
func blockName(line, keyword string) (string, bool) {
	name, ok := strings.CutPrefix(line, keyword+" ")
	if !ok {
		return "", false
	}
	if name, ok = strings.CutSuffix(name, " {"); !ok || !isIdent(name) {
		return "", false
	}
	return name, true
}

func isIdent(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// hookLine reads `type filter hook HOOK priority filter; policy POLICY;`.
func hookLine(line string) (hook, policy string, ok bool) {
	rest, ok := strings.CutPrefix(line, "type filter hook ")
	if !ok {
		return "", "", false
	}
	hook, rest, ok = strings.Cut(rest, " priority filter; policy ")
	if !ok || (hook != "input" && hook != "forward" && hook != "output") {
		return "", "", false
	}
	policy, ok = strings.CutSuffix(rest, ";")
	if !ok || (policy != "accept" && policy != "drop") {
		return "", "", false
	}
	return hook, policy, true
}

// portRule is `[ip|ip6 saddr { SOURCES } ]PROTO dport PORT accept[ comment "TEXT"]`.
type portRule struct {
	family, sources, proto, port, comment string
}

func parsePortRule(line string) (portRule, bool) {
	var r portRule
	rest := line
	for _, fam := range []string{"ip", "ip6"} {
		if after, ok := strings.CutPrefix(rest, fam+" saddr { "); ok {
			var found bool
			r.sources, rest, found = strings.Cut(after, " } ")
			if !found || r.sources == "" || strings.ContainsAny(r.sources, "{}") {
				return r, false
			}
			r.family = fam
			break
		}
	}
	var ok bool
	if r.proto, rest, ok = strings.Cut(rest, " dport "); !ok || (r.proto != "tcp" && r.proto != "udp") {
		return r, false
	}
	if r.port, rest, ok = strings.Cut(rest, " accept"); !ok || r.port == "" || len(r.port) > 5 || strings.Trim(r.port, "0123456789") != "" {
		return r, false
	}
	if rest == "" {
		return r, true
	}
	c, ok := strings.CutPrefix(rest, ` comment "`)
	if c, ok2 := strings.CutSuffix(c, `"`); ok && ok2 {
		for _, ch := range []byte(c) {
			if !isIdent(string(ch|0x20)) && !strings.ContainsRune(" _.:/-0123456789", rune(ch)) {
				return r, false
			}
		}
		r.comment = c
		return r, true
	}
	return r, false
}

// parseNftConf compiles nftables.conf text. Errors name the line.
func parseNftConf(content string) (*nftProgram, error) {
	var (
		p     *nftProgram
		ch    *nftChain
		depth int // 0 top, 1 in table, 2 in chain
		done  bool
	)
	lines := strings.Split(content, "\n")
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("nftables.conf:%d: %s: %q", n, why, line) }
		switch depth {
		case 0:
			switch {
			case line == "flush ruleset" && p == nil:
			case done:
				return nil, bad("only one table is supported")
			default:
				name, ok := blockName(line, "table inet")
				if !ok {
					return nil, bad("want `flush ruleset` or `table inet NAME {`")
				}
				p = &nftProgram{Table: name}
				depth = 1
			}
		case 1:
			if line == "}" {
				depth, done = 0, true
				continue
			}
			name, ok := blockName(line, "chain")
			if !ok {
				return nil, bad("want `chain NAME {` or `}`")
			}
			for _, c := range p.Chains {
				if c.Name == name {
					return nil, bad("chain defined twice")
				}
			}
			p.Chains = append(p.Chains, nftChain{Name: name})
			ch = &p.Chains[len(p.Chains)-1]
			depth = 2
		case 2:
			if line == "}" {
				if ch.Hook == "" {
					return nil, bad("chain has no `type filter hook` line")
				}
				depth = 1
				continue
			}
			if hook, policy, ok := hookLine(line); ok {
				if ch.Hook != "" || len(ch.Rules) > 0 {
					return nil, bad("the chain type must be its first line, once")
				}
				if p.chain(hook) != nil {
					return nil, bad("two chains on one hook")
				}
				ch.Hook, ch.Policy = hook, policy
				continue
			}
			if ch.Hook == "" {
				return nil, bad("the chain type must be its first line")
			}
			r, err := compileRule(line)
			if err != nil {
				return nil, fmt.Errorf("nftables.conf:%d: %w", n, err)
			}
			r.Line, r.Text = n, line
			ch.Rules = append(ch.Rules, r)
		}
	}
	if depth != 0 || p == nil {
		return nil, fmt.Errorf("nftables.conf:%d: unterminated or missing table", len(lines))
	}
	if p.chain("input") == nil {
		return nil, fmt.Errorf("nftables.conf: no input chain")
	}
	return p, nil
}

// Expression builders, one per nft statement, in nft's register usage.
func metaEq(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

func nfproto(v4 bool) []expr.Any {
	if v4 {
		return metaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV4})
	}
	return metaEq(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV6})
}

func l4proto(proto byte) []expr.Any { return metaEq(expr.MetaKeyL4PROTO, []byte{proto}) }

func load(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
}

func cmpEq(data []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

func iif(op expr.CmpOp) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIF, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, loopbackIfindex)}}
}

// ctState matches when any of mask's conntrack state bits is set.
func ctState(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// addrMatch matches the source (or destination) address against a prefix
// as nft does: a shorter load for a whole-byte prefix, else a mask.
func addrMatch(pfx netip.Prefix, src bool) []expr.Any {
	v4 := pfx.Addr().Is4()
	off := uint32(24) // IPv6 daddr
	switch {
	case v4 && src:
		off = 12
	case v4:
		off = 16
	case src:
		off = 8
	}
	addr := pfx.Addr().AsSlice()
	out := nfproto(v4)
	if bits := pfx.Bits(); bits%8 == 0 {
		return append(out, load(expr.PayloadBaseNetworkHeader, off, uint32(bits/8)), cmpEq(addr[:bits/8]))
	}
	mask := make([]byte, len(addr))
	for i := range pfx.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return append(out, load(expr.PayloadBaseNetworkHeader, off, uint32(len(addr))),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: mask, Xor: make([]byte, len(addr))},
		cmpEq(pfx.Masked().Addr().AsSlice()))
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func lookup() *expr.Lookup { return &expr.Lookup{SourceRegister: 1} }

func typeSet(t nftables.SetDatatype, vals ...byte) *nftSet {
	s := &nftSet{KeyType: t}
	for _, v := range vals {
		s.Elements = append(s.Elements, nftables.SetElement{Key: []byte{v}})
	}
	return s
}

// ICMP and ICMPv6 type numbers (RFC 792, RFC 4443, RFC 4861, RFC 3810).
const (
	icmpEchoRequest = 8
	icmp6EchoReq    = 128
)

// fixedRule is one statement of the template that takes no parameter.
type fixedRule struct {
	exprs func() []expr.Any
	set   func() *nftSet
}

func icmpTypes(v4 bool, then ...expr.Any) []expr.Any {
	out := nfproto(v4)
	proto := byte(unix.IPPROTO_ICMP)
	if !v4 {
		proto = unix.IPPROTO_ICMPV6
	}
	out = append(out, l4proto(proto)...)
	out = append(out, load(expr.PayloadBaseTransportHeader, 0, 1))
	return append(out, then...)
}

func echoLimited(v4 bool, typ byte) []expr.Any {
	return icmpTypes(v4, cmpEq([]byte{typ}), &expr.Limit{Type: expr.LimitTypePkts, Rate: 10, Unit: expr.LimitTimeSecond, Burst: 20}, verdict(expr.VerdictAccept))
}

// fixedRules are the template's statements without parameters.
func fixedRules() map[string]fixedRule {
	linkLocal6 := netip.MustParsePrefix("fe80::/10")
	return map[string]fixedRule{
		"ct state established,related accept": {exprs: func() []expr.Any {
			return append(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
		}},
		"ct state invalid drop": {exprs: func() []expr.Any {
			return append(ctState(expr.CtStateBitINVALID), verdict(expr.VerdictDrop))
		}},
		`iif "lo" accept`: {exprs: func() []expr.Any { return append(iif(expr.CmpOpEq), verdict(expr.VerdictAccept)) }},
		`iif != "lo" ip daddr 127.0.0.0/8 drop`: {exprs: func() []expr.Any {
			return append(append(iif(expr.CmpOpNeq), addrMatch(netip.MustParsePrefix("127.0.0.0/8"), false)...), verdict(expr.VerdictDrop))
		}},
		`iif != "lo" ip6 daddr ::1 drop`: {exprs: func() []expr.Any {
			return append(append(iif(expr.CmpOpNeq), addrMatch(netip.MustParsePrefix("::1/128"), false)...), verdict(expr.VerdictDrop))
		}},
		"icmp type { destination-unreachable, time-exceeded, parameter-problem } accept": {
			exprs: func() []expr.Any { return icmpTypes(true, lookup(), verdict(expr.VerdictAccept)) },
			set:   func() *nftSet { return typeSet(nftables.TypeICMPType, 3, 11, 12) },
		},
		"icmp type echo-request limit rate 10/second burst 20 packets accept": {exprs: func() []expr.Any { return echoLimited(true, icmpEchoRequest) }},
		"icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept": {
			exprs: func() []expr.Any { return icmpTypes(false, lookup(), verdict(expr.VerdictAccept)) },
			set:   func() *nftSet { return typeSet(nftables.TypeICMP6Type, 1, 2, 3, 4) },
		},
		"icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept": {
			exprs: func() []expr.Any {
				return icmpTypes(false, lookup(), load(expr.PayloadBaseNetworkHeader, 7, 1), cmpEq([]byte{255}), verdict(expr.VerdictAccept))
			},
			set: func() *nftSet { return typeSet(nftables.TypeICMP6Type, 134, 135, 136) },
		},
		"icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } ip6 saddr fe80::/10 accept": {
			exprs: func() []expr.Any {
				m := addrMatch(linkLocal6, true)[2:] // nfproto is already matched
				return append(icmpTypes(false, lookup()), append(m, verdict(expr.VerdictAccept))...)
			},
			set: func() *nftSet { return typeSet(nftables.TypeICMP6Type, 130, 131, 132, 143) },
		},
		"icmpv6 type echo-request limit rate 10/second burst 20 packets accept": {exprs: func() []expr.Any { return echoLimited(false, icmp6EchoReq) }},
		`ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies"`: {exprs: func() []expr.Any {
			out := append(addrMatch(linkLocal6, true), l4proto(unix.IPPROTO_UDP)...)
			// nft merges the adjacent sport and dport into one 4-byte load.
			return append(out, load(expr.PayloadBaseTransportHeader, 0, 4), cmpEq([]byte{0x02, 0x23, 0x02, 0x22}), verdict(expr.VerdictAccept))
		}},
	}
}

// compileRule compiles one rule statement.
func compileRule(line string) (nlRule, error) {
	if f, ok := fixedRules()[line]; ok {
		r := nlRule{Exprs: f.exprs()}
		if f.set != nil {
			r.Set = f.set()
		}
		if i := strings.Index(line, ` comment "`); i >= 0 {
			r.Comment = strings.TrimSuffix(line[i+len(` comment "`):], `"`)
		}
		return r, nil
	}
	m, ok := parsePortRule(line)
	if !ok {
		return nlRule{}, fmt.Errorf("statement not supported over netlink: %q", line)
	}
	port, _ := strconv.Atoi(m.port)
	if port < 1 || port > 65535 {
		return nlRule{}, fmt.Errorf("port %d out of range: %q", port, line)
	}
	proto := byte(unix.IPPROTO_TCP)
	if m.proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	r := nlRule{Comment: m.comment}
	if m.family != "" {
		v4 := m.family == "ip"
		srcs, err := parseSources(m.sources, v4)
		if err != nil {
			return nlRule{}, fmt.Errorf("%w: %q", err, line)
		}
		if len(srcs) == 1 {
			r.Exprs = addrMatch(srcs[0], true)
		} else {
			off, n := uint32(12), uint32(4)
			if !v4 {
				off, n = 8, 16
			}
			r.Exprs = append(nfproto(v4), load(expr.PayloadBaseNetworkHeader, off, n), lookup())
			if r.Set, err = intervalSet(srcs, v4); err != nil {
				return nlRule{}, fmt.Errorf("%w: %q", err, line)
			}
		}
	} else {
		r.Port, r.V4, r.V6 = &plan.Port{Port: port, Proto: m.proto}, true, true
	}
	r.Exprs = append(r.Exprs, l4proto(proto)...)
	r.Exprs = append(r.Exprs, load(expr.PayloadBaseTransportHeader, 2, 2), cmpEq(binary.BigEndian.AppendUint16(nil, uint16(port))), verdict(expr.VerdictAccept))
	return r, nil
}

// parseSources reads "A, B/24, ..." of one family, as prefixes.
func parseSources(list string, v4 bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		var pfx netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		switch {
		case err != nil:
			return nil, fmt.Errorf("bad source %q: %w", s, err)
		case pfx.Addr().Zone() != "" || pfx.Addr().Is4In6():
			return nil, fmt.Errorf("bad source %q", s)
		case pfx.Addr().Is4() != v4:
			return nil, fmt.Errorf("source %q is of the other address family", s)
		case pfx.Bits() == 0:
			return nil, fmt.Errorf("source %q matches everything", s)
		case pfx.Masked() != pfx:
			return nil, fmt.Errorf("source %q has host bits set", s)
		}
		out = append(out, pfx)
	}
	return out, nil
}

// intervalSet builds the elements of an anonymous interval set the way
// nft does: each range as its first address and the address after its
// last (flagged as an end), an end element at zero when the first range
// does not start there, sorted; overlapping ranges are refused.
func intervalSet(srcs []netip.Prefix, v4 bool) (*nftSet, error) {
	srcs = slices.Clone(srcs)
	slices.SortFunc(srcs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	t := nftables.TypeIPAddr
	if !v4 {
		t = nftables.TypeIP6Addr
	}
	s := &nftSet{KeyType: t, Interval: true}
	if !srcs[0].Addr().IsUnspecified() {
		s.Elements = append(s.Elements, nftables.SetElement{Key: make([]byte, srcs[0].Addr().BitLen()/8), IntervalEnd: true})
	}
	for i, p := range srcs {
		if i > 0 && srcs[i-1].Overlaps(p) {
			return nil, fmt.Errorf("sources %s and %s overlap", srcs[i-1], p)
		}
		last := lastAddr(p)
		if i > 0 && len(s.Elements) > 0 && s.Elements[len(s.Elements)-1].IntervalEnd && slices.Equal(s.Elements[len(s.Elements)-1].Key, p.Addr().AsSlice()) {
			// adjacent to the previous range: nft refuses to split them, so merge
			return nil, fmt.Errorf("sources %s and %s are adjacent; write them as one prefix", srcs[i-1], p)
		}
		s.Elements = append(s.Elements, nftables.SetElement{Key: p.Addr().AsSlice()})
		if next := last.Next(); next.IsValid() {
			s.Elements = append(s.Elements, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return s, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
