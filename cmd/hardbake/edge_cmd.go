package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/fromconfig"
)

// runEdge prints the provider's edge-firewall (and backup) API requests for
// one machine, from the same compiled plan `render` makes, so the SSH port
// and the services always match the host firewall.
func runEdge(e *env, args []string) error {
	fs := newFlags(e, "edge", "--provider NAME [flags]")
	var in inputFlags
	in.register(fs)
	provider := fs.String("provider", "", "provider whose API requests to print: "+strings.Join(edge.Providers(), ", "))
	ipFlag := fs.String("ip", "", "the machine's public IPv4 `ADDR` (OVH's firewall lives on it; a placeholder otherwise)")
	vps := fs.String("vps", "", "OVHcloud VPS service `NAME` for the backup requests (a placeholder otherwise)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if !slices.Contains(edge.Providers(), *provider) {
		return usagef("--provider: %q is not one of %s", *provider, strings.Join(edge.Providers(), ", "))
	}
	opts := edge.Options{ServiceName: *vps}
	if *ipFlag != "" {
		ip, err := netip.ParseAddr(*ipFlag)
		if err != nil || !ip.Is4() {
			return usagef("--ip: %q is not an IPv4 address", *ipFlag)
		}
		opts.IP = ip
	}
	res, _, err := in.compile(e, fs)
	if err != nil {
		return err
	}
	profileFile := in.profile
	input, err := fromconfig.Input(res.Profile, res.Machine, res.Plan)
	if err != nil {
		return err
	}
	doc, err := edge.Build(*provider, input, res.Profile.Edge, res.Profile.Backup, opts)
	if err != nil {
		return cliError(fromconfig.ConfigError(err, profileFile, in.orderSrc))
	}
	for _, w := range doc.Warnings {
		fmt.Fprintln(e.stderr, "hardbake: warning:", w)
	}
	out, err := edge.Encode(doc)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}
