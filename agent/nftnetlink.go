package agent

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// NetlinkFirewall programs nf_tables itself, for images that ship neither
// nft nor iptables: the kernel has nf_tables, only userspace is missing.
type NetlinkFirewall interface {
	// Replace swaps the whole ruleset for p in one netlink batch (flush
	// ruleset, then add), which the kernel applies as one transaction:
	// there is no moment with no rules.
	Replace(p *nftProgram) error
	// Verify reads the loaded ruleset back and fails unless it is p.
	Verify(p *nftProgram) error
	// Flush removes every rule (the rollback when nothing came before).
	Flush() error
}

// Netlink is the machine's NetlinkFirewall, on the calling process's
// network namespace.
type Netlink struct{}

func hookOf(s string) *nftables.ChainHook {
	switch s {
	case "input":
		return nftables.ChainHookInput
	case "forward":
		return nftables.ChainHookForward
	}
	return nftables.ChainHookOutput
}

func policyOf(s string) nftables.ChainPolicy {
	if s == "accept" {
		return nftables.ChainPolicyAccept
	}
	return nftables.ChainPolicyDrop
}

func (Netlink) Replace(p *nftProgram) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	c.FlushRuleset()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: p.Table})
	for _, ch := range p.Chains {
		pol := policyOf(ch.Policy)
		chain := c.AddChain(&nftables.Chain{
			Name: ch.Name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hookOf(ch.Hook), Priority: nftables.ChainPriorityFilter, Policy: &pol,
		})
		for _, r := range ch.Rules {
			exprs := r.Exprs
			if r.Set != nil {
				set := &nftables.Set{Table: t, Anonymous: true, Constant: true, Interval: r.Set.Interval, KeyType: r.Set.KeyType}
				if r.Set.Interval {
					set.KeyByteOrder = binaryutil.BigEndian // as nft marks address sets
				}
				if err := c.AddSet(set, r.Set.Elements); err != nil {
					return fmt.Errorf("netlink: set for nftables.conf:%d: %w", r.Line, err)
				}
				exprs = slices.Clone(exprs)
				for i, e := range exprs {
					if l, ok := e.(*expr.Lookup); ok {
						l2 := *l
						l2.SetName, l2.SetID = set.Name, set.ID
						exprs[i] = &l2
					}
				}
			}
			rule := &nftables.Rule{Table: t, Chain: chain, Exprs: exprs}
			if r.Comment != "" {
				rule.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
			}
			c.AddRule(rule)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netlink: load ruleset: %w", err)
	}
	return nil
}

func (Netlink) Flush() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	c.FlushRuleset()
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netlink: flush ruleset: %w", err)
	}
	return nil
}

// Verify compares table, chains (hook, policy) and every rule, expression
// by expression in their netlink encoding, with the anonymous sets'
// elements and the comments. Nothing else may be loaded.
func (Netlink) Verify(p *nftProgram) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return fmt.Errorf("netlink: list tables: %w", err)
	}
	if len(tables) != 1 || tables[0].Name != p.Table || tables[0].Family != nftables.TableFamilyINet {
		var names []string
		for _, t := range tables {
			names = append(names, fmt.Sprintf("family %d %s", t.Family, t.Name))
		}
		return fmt.Errorf("loaded tables %v, want only inet %s", names, p.Table)
	}
	t := tables[0]
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("netlink: list chains: %w", err)
	}
	if len(chains) != len(p.Chains) {
		return fmt.Errorf("%d chains loaded, want %d", len(chains), len(p.Chains))
	}
	var errs []error
	for _, want := range p.Chains {
		i := slices.IndexFunc(chains, func(c *nftables.Chain) bool { return c.Name == want.Name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("chain %s not loaded", want.Name))
			continue
		}
		got := chains[i]
		if got.Hooknum == nil || *got.Hooknum != *hookOf(want.Hook) || got.Policy == nil || *got.Policy != policyOf(want.Policy) {
			errs = append(errs, fmt.Errorf("chain %s: hook or policy differs from hook %s policy %s", want.Name, want.Hook, want.Policy))
			continue
		}
		rules, err := c.GetRules(t, got)
		if err != nil {
			return fmt.Errorf("netlink: list rules of %s: %w", want.Name, err)
		}
		if len(rules) != len(want.Rules) {
			errs = append(errs, fmt.Errorf("chain %s: %d rules loaded, want %d", want.Name, len(rules), len(want.Rules)))
			continue
		}
		for j, wr := range want.Rules {
			if err := sameRule(c, t, rules[j], wr); err != nil {
				errs = append(errs, fmt.Errorf("chain %s rule %d (nftables.conf:%d %q): %w", want.Name, j+1, wr.Line, wr.Text, err))
			}
		}
	}
	return errors.Join(errs...)
}

func sameRule(c *nftables.Conn, t *nftables.Table, got *nftables.Rule, want nlRule) error {
	if len(got.Exprs) != len(want.Exprs) {
		return fmt.Errorf("%d expressions loaded, want %d", len(got.Exprs), len(want.Exprs))
	}
	for k, we := range want.Exprs {
		ge := got.Exprs[k]
		if wl, ok := we.(*expr.Lookup); ok {
			gl, ok := ge.(*expr.Lookup)
			if !ok || gl.SourceRegister != wl.SourceRegister || gl.Invert {
				return fmt.Errorf("expression %d: want a set lookup", k+1)
			}
			if err := sameSet(c, t, gl.SetName, want.Set); err != nil {
				return err
			}
			continue
		}
		wb, err := expr.Marshal(byte(nftables.TableFamilyINet), we)
		if err != nil {
			return err
		}
		gb, err := expr.Marshal(byte(nftables.TableFamilyINet), ge)
		if err != nil {
			return err
		}
		if !bytes.Equal(wb, gb) {
			return fmt.Errorf("expression %d differs", k+1)
		}
	}
	comment, _ := userdata.GetString(got.UserData, userdata.TypeComment)
	if comment != want.Comment {
		return fmt.Errorf("comment %q, want %q", comment, want.Comment)
	}
	return nil
}

func sameSet(c *nftables.Conn, t *nftables.Table, name string, want *nftSet) error {
	if want == nil {
		return errors.New("a set lookup where none is planned")
	}
	s, err := c.GetSetByName(t, name)
	if err != nil {
		return fmt.Errorf("netlink: set %s: %w", name, err)
	}
	if s.KeyType.Bytes != want.KeyType.Bytes || s.Interval != want.Interval {
		return fmt.Errorf("set %s: key type or flags differ", name)
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return fmt.Errorf("netlink: elements of %s: %w", name, err)
	}
	key := func(e nftables.SetElement) string {
		end := "+"
		if e.IntervalEnd {
			end = "-"
		}
		return end + string(e.Key)
	}
	var g, w []string
	for _, e := range els {
		g = append(g, key(e))
	}
	for _, e := range want.Elements {
		w = append(w, key(e))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		return fmt.Errorf("set %s: elements differ", name)
	}
	return nil
}
