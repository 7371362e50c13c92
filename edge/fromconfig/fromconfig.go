// Package fromconfig builds the edge's Input from the same values render
// compiles — the profile, the resolved order and the plan — and turns the
// edge's input problems into config's input errors (exit code 2, file,
// line:column and key path), so every front end reports them alike.
package fromconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// Input is what the host firewall of pl allows. pl must be the plan
// render.Compile made from p and m: the SSH port is taken from it, and the
// ports the plan's firewall verifies must be exactly those Input opens to
// all, or Input refuses (the edge would drift from the host).
//
// render keeps its merged firewall rules unexported and the plan records
// only the ports open to all (plan.Firewall.Allow), so the per-source rules
// are merged here the way render's firewallRules merges them; the check
// against the plan catches any divergence.
func Input(p *config.Profile, m *config.Machine, pl *plan.Plan) (*edge.Input, error) {
	if pl == nil {
		return nil, errors.New("edge: no plan")
	}
	in := &edge.Input{
		Profile:         p.Metadata.Name,
		InstanceID:      m.InstanceID,
		SSHPort:         pl.SSH.Port,
		SSHPath:         edge.Origin{Doc: edge.DocProfile, Path: "ssh.port"},
		ICMP:            true,
		HostFirewallOff: !config.Bool(p.Firewall.Enabled, true),
	}
	if !m.SSHPort.IsZero() {
		in.SSHPath = edge.Origin{Doc: edge.DocOrder, Path: "ssh_port"}
	}
	if want := render.SSHPort(p, m); want != pl.SSH.Port {
		return nil, fmt.Errorf("edge: the plan's SSH port %d is not the profile and order's %d: the plan was compiled from other inputs", pl.SSH.Port, want)
	}
	if pl.InstanceID != m.InstanceID {
		return nil, fmt.Errorf("edge: the plan is for instance %q, the order for %q", pl.InstanceID, m.InstanceID)
	}

	byKey := map[plan.Port]*edge.Service{}
	var order []plan.Port
	get := func(port int, proto string, o edge.Origin) *edge.Service {
		k := plan.Port{Port: port, Proto: proto}
		if s, ok := byKey[k]; ok {
			return s
		}
		s := &edge.Service{Port: port, Proto: proto, Origin: o}
		byKey[k] = s
		order = append(order, k)
		return s
	}
	for i, svc := range p.Firewall.Services {
		path := fmt.Sprintf("firewall.services[%d]", i)
		s := get(svc.Port, svc.Proto, edge.Origin{Doc: edge.DocProfile, Path: path})
		if len(svc.Sources) == 0 {
			s.Any = true
		}
		for j, src := range svc.Sources {
			prefix, err := netip.ParsePrefix(src)
			if err != nil { // config validated it; a hand-built profile may not be
				return nil, fmt.Errorf("edge: %s.sources[%d]: %w", path, j, err)
			}
			prefix = prefix.Masked()
			if !slices.ContainsFunc(s.Sources, func(x edge.Source) bool { return x.Prefix == prefix }) {
				s.Sources = append(s.Sources, edge.Source{Prefix: prefix, Origin: edge.Origin{Doc: edge.DocProfile, Path: fmt.Sprintf("%s.sources[%d]", path, j)}})
			}
		}
	}
	for i, a := range m.Allow {
		get(a.Port, a.Proto, edge.Origin{Doc: edge.DocOrder, Path: fmt.Sprintf("allow[%d]", i)}).Any = true
	}
	for _, k := range order {
		s := byKey[k]
		if s.Any {
			s.Sources = nil // open to all: source lists would only repeat it
		}
		in.Services = append(in.Services, *s)
	}
	edge.SortServices(in.Services)

	if pl.Firewall != nil {
		open := []plan.Port{{Port: in.SSHPort, Proto: "tcp"}}
		for _, s := range in.Services {
			if s.Any {
				open = append(open, plan.Port{Port: s.Port, Proto: s.Proto})
			}
		}
		if !samePorts(open, pl.Firewall.Allow) {
			return nil, fmt.Errorf("edge: the plan's firewall allows %v, the profile and order %v: the plan was compiled from other inputs", pl.Firewall.Allow, open)
		}
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return in, nil
}

func samePorts(a, b []plan.Port) bool {
	set := func(ps []plan.Port) map[plan.Port]bool {
		m := map[plan.Port]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for p := range sa {
		if !sb[p] {
			return false
		}
	}
	return true
}

// ConfigError turns an *edge.InputError into a *config.InputError whose
// entries name the profile file, the order's file:line:column (orderSrc may
// be nil) or the flag; any other error is returned as is.
func ConfigError(err error, profileFile string, orderSrc *config.Source) error {
	var ie *edge.InputError
	if !errors.As(err, &ie) {
		return err
	}
	out := &config.InputError{}
	for _, is := range ie.Issues {
		fe := &config.FieldError{Path: is.Origin.Path, Code: config.Code(is.Code), Reason: is.Reason}
		switch is.Origin.Doc {
		case edge.DocProfile:
			fe.File = profileFile
		case edge.DocOrder:
			if orderSrc != nil {
				fe.File, fe.Pos = orderSrc.File, orderSrc.Pos(is.Origin.Path)
			}
		case edge.DocFlag:
			fe.File, fe.Path = is.Origin.Path, ""
		}
		out.Errs = append(out.Errs, fe)
	}
	return out
}
