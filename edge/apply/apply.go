// Package apply is what hardbaked calls to carry out an order's edge
// firewall and backup policy at the providers it has credentials for: one
// entry point per event (the order is created or its IP is set; the agent
// reports hardened), each returning the Outcome to store on the order.
package apply

import (
	"context"
	"fmt"
	"net/netip"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/hetzner"
	"hardbake.dev/hardbake/edge/ovh"
)

// Credentials are the operator's provider credentials; a nil or empty
// entry means hardbaked only renders for that provider.
type Credentials struct {
	OVH     *ovh.Credentials
	Hetzner hetzner.Token
	// HetznerEndpoint replaces the Hetzner Cloud API root when set (a
	// local test API); Options.Hetzner.Endpoint, when set, wins.
	HetznerEndpoint string
}

// Secrets are the credential values, for a redactor (edge.NewRedactor)
// over everything a front end shows.
func (c Credentials) Secrets() []string {
	var s []string
	if c.OVH != nil {
		s = append(s, c.OVH.ApplicationKey, c.OVH.ApplicationSecret, c.OVH.ConsumerKey)
	}
	if c.Hetzner != "" {
		s = append(s, string(c.Hetzner))
	}
	return s
}

// Has reports whether there are credentials for provider.
func (c Credentials) Has(provider string) bool {
	switch provider {
	case edge.ProviderOVH:
		return c.OVH != nil
	case edge.ProviderHetzner:
		return c.Hetzner != ""
	}
	return false
}

// Target identifies the machine at its provider.
type Target struct {
	IP             netip.Addr // OVH: the IPv4 address the firewall lives on
	ServerID       int64      // Hetzner: the server's id
	VPSServiceName string     // OVH VPS: the service name, for backups
}

// Edge applies the edge firewall of in for provider. Problems with the
// inputs are an *edge.InputError, as from edge.Build.
func Edge(ctx context.Context, creds Credentials, opts Options, provider string, in *edge.Input, pol *edge.Policy, t Target) (*edge.Outcome, error) {
	if !creds.Has(provider) {
		return nil, fmt.Errorf("edge: no credentials for %s", provider)
	}
	if !pol.Wants(provider) {
		return nil, &edge.InputError{Issues: []edge.Issue{{Origin: edge.Origin{Doc: edge.DocProfile, Path: "edge.providers"},
			Code: "invalid-choice", Reason: fmt.Sprintf("does not list %q", provider)}}}
	}
	switch provider {
	case edge.ProviderOVH:
		rules, _, err := edge.OVHRules(in, pol)
		if err != nil {
			return nil, err
		}
		c, err := ovh.New(*creds.OVH, opts.OVH)
		if err != nil {
			return nil, err
		}
		return c.Apply(ctx, t.IP, rules)
	case edge.ProviderHetzner:
		rules, err := edge.HetznerRules(in)
		if err != nil {
			return nil, err
		}
		hopts := opts.Hetzner
		if hopts.Endpoint == "" {
			hopts.Endpoint = creds.HetznerEndpoint
		}
		c, err := hetzner.New(creds.Hetzner, hopts)
		if err != nil {
			return nil, err
		}
		return c.Apply(ctx, edge.FirewallName(in.InstanceID), t.ServerID, rules)
	}
	return nil, fmt.Errorf("edge: hardbake does not apply %s rules itself; render them with hardbake edge", provider)
}

// Options are the clients' options (polling, logger, HTTP client).
type Options struct {
	OVH     ovh.Options
	Hetzner hetzner.Options
}

// Backup carries out the automated-backup part of b (call it with Edge).
func Backup(ctx context.Context, creds Credentials, opts Options, b *edge.BackupPolicy, t Target) (*edge.Outcome, error) {
	c, err := backupClient(creds, opts, b)
	if err != nil || c == nil {
		return nil, err
	}
	return c.Backup(ctx, t.VPSServiceName, b)
}

// AfterHardened takes the snapshot b asks for; call it once the agent's
// report says hardened.
func AfterHardened(ctx context.Context, creds Credentials, opts Options, b *edge.BackupPolicy, in *edge.Input, t Target) (*edge.Outcome, error) {
	if b == nil || !b.SnapshotOn() {
		return nil, nil
	}
	c, err := backupClient(creds, opts, b)
	if err != nil || c == nil {
		return nil, err
	}
	return c.Snapshot(ctx, t.VPSServiceName, in.InstanceID)
}

// backupClient returns nil, nil when there is nothing to do.
func backupClient(creds Credentials, opts Options, b *edge.BackupPolicy) (*ovh.Client, error) {
	if b == nil {
		return nil, nil
	}
	if b.Provider != edge.BackupOVHVPS {
		return nil, fmt.Errorf("backup: unknown provider %q", b.Provider)
	}
	if creds.OVH == nil {
		return nil, fmt.Errorf("backup: no credentials for ovh")
	}
	return ovh.New(*creds.OVH, opts.OVH)
}
