package ovh

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"hardbake.dev/hardbake/edge"
)

// Apply makes the Network Firewall of ip hold exactly rules (from
// edge.OVHRules) and enables it:
//
//  1. create the firewall on the IP unless it exists, and wait until it is ok;
//  2. list the existing rules; delete every rule whose sequence the plan
//     does not use or whose content differs, and wait until it is gone;
//  3. create each missing rule in sequence order (the final deny last) and
//     poll it from creationPending to ok;
//  4. enable the firewall unless it is enabled.
//
// The outcome records every step, also when Apply fails half way; a second
// Apply finds what the first one made and only adds what is missing.
func (c *Client) Apply(ctx context.Context, ip netip.Addr, rules []edge.OVHRule) (*edge.Outcome, error) {
	out := &edge.Outcome{Provider: edge.ProviderOVH, Target: ip.String(), Steps: []edge.Step{}}
	if !ip.Is4() {
		return out, out.Fail(fmt.Errorf("ovh: %s is not IPv4: the Network Firewall lives on IPv4 addresses", ip))
	}
	if len(rules) > edge.OVHMaxRules {
		return out, out.Fail(fmt.Errorf("ovh: %d rules, the Network Firewall takes at most %d", len(rules), edge.OVHMaxRules))
	}
	want := map[int]edge.OVHRule{}
	for _, r := range rules {
		if r.Sequence < 0 || r.Sequence >= edge.OVHMaxRules {
			return out, out.Fail(fmt.Errorf("ovh: rule sequence %d outside 0–%d", r.Sequence, edge.OVHMaxRules-1))
		}
		if _, dup := want[r.Sequence]; dup {
			return out, out.Fail(fmt.Errorf("ovh: two rules with sequence %d", r.Sequence))
		}
		want[r.Sequence] = r
	}
	base := "/ip/" + edge.OVHIPBlock(ip) + "/firewall"
	fwPath := base + "/" + ip.String()

	// 1. The firewall on the IP.
	var onFW []string
	if err := c.call(ctx, http.MethodGet, base, nil, &onFW); err != nil && !notFound(err) {
		return out, out.Fail(err)
	}
	if !slices.Contains(onFW, ip.String()) {
		if err := c.call(ctx, http.MethodPost, base, edge.OVHFirewallCreate{IPOnFirewall: ip.String()}, nil); err != nil {
			out.Add("create firewall", ip.String(), edge.ResultFailed)
			return out, out.Fail(err)
		}
		c.log("ovh: firewall created", "ip", ip.String())
		out.Add("create firewall", ip.String(), edge.ResultDone)
	} else {
		out.Add("create firewall", ip.String(), edge.ResultUnchanged)
	}
	var fw firewall
	if err := c.pollUntil(ctx, "firewall on "+ip.String(), func() (bool, string, error) {
		if err := c.call(ctx, http.MethodGet, fwPath, nil, &fw); err != nil {
			return false, "", err
		}
		return fw.State == "ok", fw.State, nil
	}); err != nil {
		return out, out.Fail(err)
	}

	// 2. Existing rules: keep what matches, delete the rest.
	var seqs []int
	if err := c.call(ctx, http.MethodGet, fwPath+"/rule", nil, &seqs); err != nil {
		return out, out.Fail(err)
	}
	slices.Sort(seqs)
	have := map[int]bool{}
	for _, seq := range seqs {
		var got rule
		path := fmt.Sprintf("%s/rule/%d", fwPath, seq)
		if err := c.call(ctx, http.MethodGet, path, nil, &got); err != nil {
			if notFound(err) {
				continue // removed meanwhile
			}
			return out, out.Fail(err)
		}
		w, planned := want[seq]
		if got.State == "removalPending" {
			if err := c.waitGone(ctx, path, seq); err != nil {
				return out, out.Fail(err)
			}
			continue
		}
		if planned && got.key() == wantKey(w) {
			if got.State != "ok" {
				if err := c.waitRule(ctx, path, seq); err != nil {
					return out, out.Fail(err)
				}
			}
			have[seq] = true
			out.Add("create rule", describe(w), edge.ResultUnchanged)
			continue
		}
		if err := c.call(ctx, http.MethodDelete, path, nil, nil); err != nil {
			out.Add("delete rule", fmt.Sprintf("rule %d", seq), edge.ResultFailed)
			return out, out.Fail(err)
		}
		if err := c.waitGone(ctx, path, seq); err != nil {
			out.Add("delete rule", fmt.Sprintf("rule %d", seq), edge.ResultFailed)
			return out, out.Fail(err)
		}
		c.log("ovh: rule deleted", "ip", ip.String(), "sequence", seq)
		out.Add("delete rule", fmt.Sprintf("rule %d (not in the plan)", seq), edge.ResultDone)
	}

	// 3. Missing rules, in sequence order: the final deny comes last.
	order := make([]int, 0, len(want))
	for seq := range want {
		order = append(order, seq)
	}
	slices.Sort(order)
	for _, seq := range order {
		if have[seq] {
			continue
		}
		r := want[seq]
		path := fmt.Sprintf("%s/rule/%d", fwPath, seq)
		if err := c.call(ctx, http.MethodPost, fwPath+"/rule", r, nil); err != nil {
			out.Add("create rule", describe(r), edge.ResultFailed)
			return out, out.Fail(err)
		}
		if err := c.waitRule(ctx, path, seq); err != nil {
			out.Add("create rule", describe(r), edge.ResultFailed)
			return out, out.Fail(err)
		}
		c.log("ovh: rule created", "ip", ip.String(), "sequence", seq)
		out.Add("create rule", describe(r), edge.ResultDone)
	}

	// 4. Enable.
	if fw.Enabled {
		out.Add("enable firewall", ip.String(), edge.ResultUnchanged)
	} else {
		if err := c.call(ctx, http.MethodPut, fwPath, edge.OVHFirewallUpdate{Enabled: true}, nil); err != nil {
			out.Add("enable firewall", ip.String(), edge.ResultFailed)
			return out, out.Fail(err)
		}
		if err := c.pollUntil(ctx, "enabling the firewall on "+ip.String(), func() (bool, string, error) {
			if err := c.call(ctx, http.MethodGet, fwPath, nil, &fw); err != nil {
				return false, "", err
			}
			return fw.Enabled && fw.State == "ok", fw.State, nil
		}); err != nil {
			out.Add("enable firewall", ip.String(), edge.ResultFailed)
			return out, out.Fail(err)
		}
		c.log("ovh: firewall enabled", "ip", ip.String())
		out.Add("enable firewall", ip.String(), edge.ResultDone)
	}
	out.Complete = true
	return out, nil
}

// waitRule polls a rule from creationPending until it is ok.
func (c *Client) waitRule(ctx context.Context, path string, seq int) error {
	return c.pollUntil(ctx, fmt.Sprintf("rule %d", seq), func() (bool, string, error) {
		var r rule
		if err := c.call(ctx, http.MethodGet, path, nil, &r); err != nil {
			return false, "", err
		}
		return r.State == "ok", r.State, nil
	})
}

// waitGone polls a deleted rule until the API no longer has it, so its
// sequence can be reused.
func (c *Client) waitGone(ctx context.Context, path string, seq int) error {
	return c.pollUntil(ctx, fmt.Sprintf("removal of rule %d", seq), func() (bool, string, error) {
		var r rule
		err := c.call(ctx, http.MethodGet, path, nil, &r)
		if notFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, "", err
		}
		return false, r.State, nil
	})
}
