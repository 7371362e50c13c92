package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// ParseNftJSON reads `nft -j list ruleset`: the policy of the input hook
// base chains and the ports accepted unconditionally (no address or
// interface match) for IPv4 and IPv6. An inet table counts for both.
// Regular chains reached by an unconditional jump/goto are followed.
func ParseNftJSON(data []byte) (ruleset, error) {
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return ruleset{}, fmt.Errorf("nft -j output: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ruleset{}, fmt.Errorf("nft -j output: trailing data after the JSON document")
	}
	items, ok := top["nftables"].([]any)
	if !ok {
		return ruleset{}, fmt.Errorf("nft -j output: no \"nftables\" array")
	}
	type chainKey struct{ family, table, name string }
	rules := map[chainKey][][]any{}
	var bases []map[string]any
	for _, it := range items {
		o, _ := it.(map[string]any)
		if c, ok := o["chain"].(map[string]any); ok && c["hook"] == "input" {
			bases = append(bases, c)
		}
		if ru, ok := o["rule"].(map[string]any); ok {
			k := chainKey{str(ru["family"]), str(ru["table"]), str(ru["chain"])}
			expr, _ := ru["expr"].([]any)
			rules[k] = append(rules[k], expr)
		}
	}
	var rs ruleset
	v4, v6 := map[plan.Port]bool{}, map[plan.Port]bool{}
	for _, c := range bases {
		fam := str(c["family"])
		policy := str(c["policy"])
		if policy == "" {
			policy = "accept"
		}
		if fam == "ip" || fam == "inet" {
			rs.PolicyV4 = policy
		}
		if fam == "ip6" || fam == "inet" {
			rs.PolicyV6 = policy
		}
		seen := map[string]bool{}
		var walk func(chain string)
		walk = func(chain string) {
			if seen[chain] {
				return
			}
			seen[chain] = true
			for _, expr := range rules[chainKey{fam, str(c["table"]), chain}] {
				ports, nfproto, jump := nftRule(expr)
				if jump != "" {
					walk(jump)
				}
				for _, p := range ports {
					if (fam == "ip" || fam == "inet") && nfproto != "ipv6" {
						v4[p] = true
					}
					if (fam == "ip6" || fam == "inet") && nfproto != "ipv4" {
						v6[p] = true
					}
				}
			}
		}
		walk(str(c["name"]))
	}
	rs.V4, rs.V6 = sortedPorts(v4), sortedPorts(v6)
	return rs, nil
}

// nftRule returns the ports an accept rule opens to everyone, the family
// it is limited to ("ipv4"/"ipv6" via meta nfproto), or the chain an
// unconditional jump leads to.
func nftRule(expr []any) (ports []plan.Port, nfproto, jump string) {
	var proto string
	var nums []int
	accept, conditional := false, false
	for _, e := range expr {
		o, _ := e.(map[string]any)
		switch {
		case o["accept"] != nil || hasKey(o, "accept"):
			accept = true
		case hasKey(o, "jump") || hasKey(o, "goto"):
			t, _ := o["jump"].(map[string]any)
			if t == nil {
				t, _ = o["goto"].(map[string]any)
			}
			jump = str(t["target"])
		case hasKey(o, "match"):
			m, _ := o["match"].(map[string]any)
			left, _ := m["left"].(map[string]any)
			op := str(m["op"])
			if p, ok := left["payload"].(map[string]any); ok && str(p["field"]) == "dport" && (op == "==" || op == "in") {
				if pr := str(p["protocol"]); pr != "th" {
					proto = pr
				}
				nums = nftNumbers(m["right"])
				continue
			}
			if meta, ok := left["meta"].(map[string]any); ok && op == "==" {
				switch str(meta["key"]) {
				case "l4proto":
					proto = str(m["right"])
					continue
				case "nfproto":
					nfproto = str(m["right"])
					continue
				}
			}
			if _, ok := left["ct"]; ok {
				continue // ct state new etc. do not narrow who may connect
			}
			conditional = true
		}
	}
	if jump != "" && (conditional || nums != nil) {
		jump = ""
	}
	if !accept || conditional || proto == "" {
		return nil, nfproto, jump
	}
	for _, n := range nums {
		if validPort(n) {
			ports = append(ports, plan.Port{Port: n, Proto: proto})
		}
	}
	return ports, nfproto, jump
}

// nftNumbers flattens a dport right-hand side: a number, a set of numbers,
// or ranges (only small ranges are expanded).
func nftNumbers(v any) []int {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.Atoi(string(x)); err == nil {
			return []int{n}
		}
	case []any:
		var out []int
		for _, e := range x {
			out = append(out, nftNumbers(e)...)
		}
		return out
	case map[string]any:
		if s, ok := x["set"]; ok {
			return nftNumbers(s)
		}
		if rg, ok := x["range"].([]any); ok && len(rg) == 2 {
			lo, hi := nftNumbers(rg[0]), nftNumbers(rg[1])
			// Bounds first: hi-lo of arbitrary numbers could overflow.
			if len(lo) == 1 && len(hi) == 1 && validPort(lo[0]) && validPort(hi[0]) && lo[0] <= hi[0] && hi[0]-lo[0] < 1024 {
				var out []int
				for n := lo[0]; n <= hi[0]; n++ {
					out = append(out, n)
				}
				return out
			}
		}
	}
	return nil
}

func hasKey(o map[string]any, k string) bool {
	_, ok := o[k]
	return ok
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func sortedPorts(m map[plan.Port]bool) []plan.Port {
	out := []plan.Port{}
	for p := range m {
		out = append(out, p)
	}
	// sort.Slice: a generic sort instantiation would cost the agent's size
	// budget ~8 KB.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Proto < out[j].Proto
	})
	return out
}

// ParseIptablesS reads `iptables -S`: the INPUT policy (lower case) and the
// ports accepted unconditionally in INPUT and in chains it jumps to
// without conditions.
func ParseIptablesS(out string) (string, []plan.Port) {
	policy := ""
	chains := map[string][][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "-P" && f[1] == "INPUT":
			policy = strings.ToLower(f[2])
		case len(f) > 2 && f[0] == "-A":
			chains[f[1]] = append(chains[f[1]], f[2:])
		}
	}
	ports := map[plan.Port]bool{}
	seen := map[string]bool{}
	var walk func(chain string)
	walk = func(chain string) {
		if seen[chain] {
			return
		}
		seen[chain] = true
		for _, rule := range chains[chain] {
			iptRule(rule, ports, walk)
		}
	}
	walk("INPUT")
	return policy, sortedPorts(ports)
}

func iptRule(f []string, ports map[plan.Port]bool, walk func(string)) {
	var proto, target string
	var nums []int
	for i := 0; i < len(f); i++ {
		arg := ""
		if i+1 < len(f) {
			arg = f[i+1]
		}
		switch f[i] {
		case "-p", "--protocol":
			proto, i = arg, i+1
		case "--dport", "--dports", "--destination-port":
			for _, s := range strings.Split(arg, ",") {
				if n, err := strconv.Atoi(s); err == nil {
					nums = append(nums, n)
				}
			}
			i++
		case "-j", "-g":
			target, i = arg, i+1
		case "-m", "--ctstate", "--state", "--comment":
			i++ // matches that do not narrow the source
		case "-s", "-d", "-i", "--source", "--destination", "--in-interface", "!", "--src-range", "--dst-range", "--match-set":
			return
		}
	}
	switch {
	case target == "ACCEPT" && proto != "" && nums != nil:
		for _, n := range nums {
			if validPort(n) {
				ports[plan.Port{Port: n, Proto: proto}] = true
			}
		}
	case target != "" && target != "ACCEPT" && target != "DROP" && target != "REJECT" && nums == nil && proto == "":
		walk(target)
	}
}

// validPort: only 1-65535 can be accepted; anything else in tool output
// (or a parse of something that is not a port) is ignored.
func validPort(n int) bool { return n >= 1 && n <= 65535 }
