package agent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

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

// nftSet is an anonymous constant set; KeyType is nft's datatype number
// (it decides how nft prints the elements), KeyLen its size in bytes.
type nftSet struct {
	KeyType, KeyLen uint32
	Interval        bool
	Elements        []nftElem
}

// nftElem is a set element; End marks the address after an interval.
type nftElem struct {
	Key []byte
	End bool
}

// nft's datatype numbers (src/datatype.h: TYPE_IPADDR, TYPE_IP6ADDR,
// TYPE_ICMP_TYPE, TYPE_ICMP6_TYPE).
const (
	typeIPAddr    = 7
	typeIP6Addr   = 8
	typeICMPType  = 14
	typeICMP6Type = 29
)

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
// alone would add about 250 KB to the agent (measured, with its Unicode
// tables).

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
		// Comments render knows (e.g. "ssh"): letters, digits, " _.:/-".
		for _, ch := range c {
			if (ch < 'a' || ch > 'z') && (ch < 'A' || ch > 'Z') && (ch < '0' || ch > '9') && !strings.ContainsRune(" _.:/-", ch) {
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

// prefix is an address (4 or 16 bytes) and a prefix length. The agent
// parses addresses itself rather than with net/netip, which would add
// about 50 KB (measured) to an agent already at its size budget; a fuzz
// test holds this parser to net/netip.
type prefix struct {
	addr []byte
	bits int
	text string
}

// last is the prefix's last address: every host bit set.
func (p prefix) last() []byte {
	b := bytes.Clone(p.addr)
	for i := p.bits; i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

// addrMatch matches the source (or destination) address against a prefix
// as nft does: a shorter load for a whole-byte prefix, else a mask.
func addrMatch(pfx prefix, src bool) []expr.Any {
	v4 := len(pfx.addr) == 4
	off := uint32(24) // IPv6 daddr
	switch {
	case v4 && src:
		off = 12
	case v4:
		off = 16
	case src:
		off = 8
	}
	out := nfproto(v4)
	n := uint32(len(pfx.addr))
	if pfx.bits%8 == 0 {
		return append(out, load(expr.PayloadBaseNetworkHeader, off, uint32(pfx.bits/8)), cmpEq(pfx.addr[:pfx.bits/8]))
	}
	mask := make([]byte, n)
	for i := range pfx.bits {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return append(out, load(expr.PayloadBaseNetworkHeader, off, n),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		cmpEq(pfx.addr))
}

// parseAddr reads a dotted-quad IPv4 or an RFC 4291 IPv6 address (no
// zone, no embedded IPv4).
func parseAddr(s string) ([]byte, bool) {
	if strings.Contains(s, ".") {
		parts := strings.Split(s, ".")
		if len(parts) != 4 {
			return nil, false
		}
		out := make([]byte, 4)
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
				return nil, false
			}
			out[i] = byte(v)
		}
		return out, true
	}
	head, tail, compressed := strings.Cut(s, "::")
	if compressed && strings.Contains(tail, "::") {
		return nil, false
	}
	groups := func(s string) ([]byte, bool) {
		if s == "" {
			return nil, true
		}
		var out []byte
		for _, g := range strings.Split(s, ":") {
			v, err := strconv.ParseUint(g, 16, 16)
			if err != nil || g == "" || len(g) > 4 || g[0] == '+' {
				return nil, false
			}
			out = append(out, byte(v>>8), byte(v))
		}
		return out, true
	}
	h, ok1 := groups(head)
	t, ok2 := groups(tail)
	switch {
	case !ok1 || !ok2:
		return nil, false
	case compressed && len(h)+len(t) <= 14:
		return append(append(h, make([]byte, 16-len(h)-len(t))...), t...), true
	case !compressed && len(h) == 16:
		return h, true
	}
	return nil, false
}

// parsePrefix reads ADDR or ADDR/BITS of the wanted family.
func parsePrefix(s string, v4 bool) (prefix, error) {
	a, bitsText, hasBits := strings.Cut(s, "/")
	addr, ok := parseAddr(a)
	if !ok {
		return prefix{}, fmt.Errorf("bad source %q", s)
	}
	if (len(addr) == 4) != v4 {
		return prefix{}, fmt.Errorf("source %q is of the other address family", s)
	}
	p := prefix{addr: addr, bits: len(addr) * 8, text: s}
	if hasBits {
		b, err := strconv.ParseUint(bitsText, 10, 8)
		if err != nil || int(b) > len(addr)*8 || (len(bitsText) > 1 && bitsText[0] == '0') {
			return prefix{}, fmt.Errorf("bad source %q", s)
		}
		p.bits = int(b)
	}
	if p.bits == 0 {
		return prefix{}, fmt.Errorf("source %q matches everything", s)
	}
	if !bytes.Equal(maskTo(p.addr, p.bits), p.addr) {
		return prefix{}, fmt.Errorf("source %q has host bits set", s)
	}
	return p, nil
}

// maskTo clears the host bits of addr.
func maskTo(addr []byte, bits int) []byte {
	b := bytes.Clone(addr)
	for i := bits; i < len(b)*8; i++ {
		b[i/8] &^= 0x80 >> (i % 8)
	}
	return b
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func lookup() *expr.Lookup { return &expr.Lookup{SourceRegister: 1} }

func typeSet(t uint32, vals ...byte) *nftSet {
	s := &nftSet{KeyType: t, KeyLen: 1}
	for _, v := range vals {
		s.Elements = append(s.Elements, nftElem{Key: []byte{v}})
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
	linkLocal6 := prefix{addr: []byte{15: 0, 0: 0xfe, 1: 0x80}, bits: 10}
	return map[string]fixedRule{
		"ct state established,related accept": {exprs: func() []expr.Any {
			return append(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
		}},
		"ct state invalid drop": {exprs: func() []expr.Any {
			return append(ctState(expr.CtStateBitINVALID), verdict(expr.VerdictDrop))
		}},
		`iif "lo" accept`: {exprs: func() []expr.Any { return append(iif(expr.CmpOpEq), verdict(expr.VerdictAccept)) }},
		`iif != "lo" ip daddr 127.0.0.0/8 drop`: {exprs: func() []expr.Any {
			return append(append(iif(expr.CmpOpNeq), addrMatch(prefix{addr: []byte{127, 0, 0, 0}, bits: 8}, false)...), verdict(expr.VerdictDrop))
		}},
		`iif != "lo" ip6 daddr ::1 drop`: {exprs: func() []expr.Any {
			return append(append(iif(expr.CmpOpNeq), addrMatch(prefix{addr: []byte{15: 1}, bits: 128}, false)...), verdict(expr.VerdictDrop))
		}},
		"icmp type { destination-unreachable, time-exceeded, parameter-problem } accept": {
			exprs: func() []expr.Any { return icmpTypes(true, lookup(), verdict(expr.VerdictAccept)) },
			set:   func() *nftSet { return typeSet(typeICMPType, 3, 11, 12) },
		},
		"icmp type echo-request limit rate 10/second burst 20 packets accept": {exprs: func() []expr.Any { return echoLimited(true, icmpEchoRequest) }},
		"icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept": {
			exprs: func() []expr.Any { return icmpTypes(false, lookup(), verdict(expr.VerdictAccept)) },
			set:   func() *nftSet { return typeSet(typeICMP6Type, 1, 2, 3, 4) },
		},
		"icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept": {
			exprs: func() []expr.Any {
				return icmpTypes(false, lookup(), load(expr.PayloadBaseNetworkHeader, 7, 1), cmpEq([]byte{255}), verdict(expr.VerdictAccept))
			},
			set: func() *nftSet { return typeSet(typeICMP6Type, 134, 135, 136) },
		},
		"icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } ip6 saddr fe80::/10 accept": {
			exprs: func() []expr.Any {
				m := addrMatch(linkLocal6, true)[2:] // nfproto is already matched
				return append(icmpTypes(false, lookup()), append(m, verdict(expr.VerdictAccept))...)
			},
			set: func() *nftSet { return typeSet(typeICMP6Type, 130, 131, 132, 143) },
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

// parseSources reads "A, B/24, ..." of one family.
func parseSources(list string, v4 bool) ([]prefix, error) {
	var out []prefix
	for _, s := range strings.Split(list, ",") {
		p, err := parsePrefix(strings.TrimSpace(s), v4)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// intervalSet builds the elements of an anonymous interval set the way
// nft does: each range as its first address and the address after its
// last (flagged as an end), an end element at zero when the first range
// does not start there, sorted; overlapping or adjacent ranges (which nft
// would merge) are refused.
func intervalSet(srcs []prefix, v4 bool) (*nftSet, error) {
	srcs = slices.Clone(srcs)
	// sort.Slice, not slices.SortFunc: each generic instantiation costs the
	// size-budgeted agent ~10 KB of sorting code (docs/bench/agent.md).
	sort.Slice(srcs, func(i, j int) bool { return bytes.Compare(srcs[i].addr, srcs[j].addr) < 0 })
	s := &nftSet{KeyType: typeIPAddr, KeyLen: 4, Interval: true}
	if !v4 {
		s.KeyType, s.KeyLen = typeIP6Addr, 16
	}
	if !bytes.Equal(srcs[0].addr, make([]byte, s.KeyLen)) {
		s.Elements = append(s.Elements, nftElem{Key: make([]byte, s.KeyLen), End: true})
	}
	for i, p := range srcs {
		if i > 0 {
			prevEnd := s.Elements[len(s.Elements)-1]
			switch c := bytes.Compare(prevEnd.Key, p.addr); {
			case !prevEnd.End || c > 0:
				return nil, fmt.Errorf("sources %s and %s overlap", srcs[i-1].text, p.text)
			case c == 0:
				return nil, fmt.Errorf("sources %s and %s are adjacent; write them as one prefix", srcs[i-1].text, p.text)
			}
		}
		s.Elements = append(s.Elements, nftElem{Key: p.addr})
		if next, ok := nextAddr(p.last()); ok {
			s.Elements = append(s.Elements, nftElem{Key: next, End: true})
		}
	}
	return s, nil
}

// nextAddr adds one to an address; false when it wraps (the last address).
func nextAddr(a []byte) ([]byte, bool) {
	b := bytes.Clone(a)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return b, true
		}
	}
	return nil, false
}
