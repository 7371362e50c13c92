// Package hetzner applies an edge document's rules as a Hetzner Cloud
// Firewall through github.com/hetznercloud/hcloud-go/v2: it ensures the
// machine's firewall exists by name, sets its rules (the set_rules action,
// waited for) and applies it to the server. Every run reconciles from the
// API's state, so it is idempotent and a retry after a failure completes the
// work without a second firewall.
package hetzner

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"hardbake.dev/hardbake/edge"
)

// Token is a Hetzner Cloud API token; it formats as [redacted].
type Token string

func (Token) String() string { return "[redacted]" }

// GoString hides the token from %#v.
func (Token) GoString() string { return "[redacted]" }

// Options tune the client. Zero values take the defaults.
type Options struct {
	Endpoint     string        // API root; default https://api.hetzner.cloud/v1
	PollInterval time.Duration // between two reads of a running action; default 1s
	Wait         time.Duration // bound on one action; default 5 min
	Logger       *slog.Logger  // one line per change; never sees the token
	HTTPClient   *http.Client
}

// Client talks to the Hetzner Cloud API with one token.
type Client struct {
	api    *hcloud.Client
	red    *edge.Redactor
	wait   time.Duration
	logger *slog.Logger
}

// New makes a client; it does not call the API.
func New(token Token, opts Options) (*Client, error) {
	if token == "" {
		return nil, fmt.Errorf("hetzner: no API token")
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	copts := []hcloud.ClientOption{
		hcloud.WithToken(string(token)),
		hcloud.WithApplication("hardbake", ""),
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(poll)}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{BackoffFunc: hcloud.ConstantBackoff(poll), MaxRetries: 3}),
	}
	if opts.Endpoint != "" {
		copts = append(copts, hcloud.WithEndpoint(opts.Endpoint))
	}
	if opts.HTTPClient != nil {
		copts = append(copts, hcloud.WithHTTPClient(opts.HTTPClient))
	}
	c := &Client{api: hcloud.NewClient(copts...), red: edge.NewRedactor(string(token)), wait: opts.Wait, logger: opts.Logger}
	if c.wait <= 0 {
		c.wait = 5 * time.Minute
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c *Client) fail(out *edge.Outcome, what string, err error) error {
	return out.Fail(c.red.Error(fmt.Errorf("hetzner: %s: %w", what, err)))
}

func (c *Client) waitFor(ctx context.Context, actions []*hcloud.Action) error {
	ctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	return c.api.Action.WaitFor(ctx, actions...)
}

// Apply makes the firewall called name (edge.FirewallName) hold exactly
// rules (edge.HetznerRules) and applies it to serverID.
func (c *Client) Apply(ctx context.Context, name string, serverID int64, rules []edge.HetznerRule) (*edge.Outcome, error) {
	out := &edge.Outcome{Provider: edge.ProviderHetzner, Target: name, Steps: []edge.Step{}}
	want, err := toHcloud(rules)
	if err != nil {
		return out, out.Fail(err)
	}
	fw, _, err := c.api.Firewall.GetByName(ctx, name)
	if err != nil {
		return out, c.fail(out, "look up firewall "+name, err)
	}
	if fw == nil {
		res, _, err := c.api.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: name, Labels: edge.HetznerLabels(), Rules: want})
		if err == nil {
			err = c.waitFor(ctx, res.Actions)
		}
		if err != nil {
			out.Add("create firewall", name, edge.ResultFailed)
			return out, c.fail(out, "create firewall "+name, err)
		}
		fw = res.Firewall
		fw.Rules = want
		c.logger.Info("hetzner: firewall created", "name", name, "rules", len(want))
		out.Add("create firewall", fmt.Sprintf("%s with %d rules", name, len(want)), edge.ResultDone)
	} else {
		out.Add("create firewall", name, edge.ResultUnchanged)
		if sameRules(fw.Rules, want) {
			out.Add("set rules", fmt.Sprintf("%d rules", len(want)), edge.ResultUnchanged)
		} else {
			actions, _, err := c.api.Firewall.SetRules(ctx, fw, hcloud.FirewallSetRulesOpts{Rules: want})
			if err == nil {
				err = c.waitFor(ctx, actions)
			}
			if err != nil {
				out.Add("set rules", fmt.Sprintf("%d rules", len(want)), edge.ResultFailed)
				return out, c.fail(out, "set rules of "+name, err)
			}
			c.logger.Info("hetzner: firewall rules set", "name", name, "rules", len(want))
			out.Add("set rules", fmt.Sprintf("%d rules (were %d)", len(want), len(fw.Rules)), edge.ResultDone)
		}
	}
	server := fmt.Sprintf("server %d", serverID)
	if slices.ContainsFunc(fw.AppliedTo, func(r hcloud.FirewallResource) bool {
		return r.Type == hcloud.FirewallResourceTypeServer && r.Server != nil && r.Server.ID == serverID
	}) {
		out.Add("apply to server", server, edge.ResultUnchanged)
	} else {
		actions, _, err := c.api.Firewall.ApplyResources(ctx, fw, []hcloud.FirewallResource{{
			Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: serverID}}})
		if err == nil {
			err = c.waitFor(ctx, actions)
		}
		if err != nil {
			out.Add("apply to server", server, edge.ResultFailed)
			return out, c.fail(out, "apply "+name+" to "+server, err)
		}
		c.logger.Info("hetzner: firewall applied", "name", name, "server", serverID)
		out.Add("apply to server", server, edge.ResultDone)
	}
	out.Complete = true
	return out, nil
}

func toHcloud(rules []edge.HetznerRule) ([]hcloud.FirewallRule, error) {
	out := make([]hcloud.FirewallRule, 0, len(rules))
	for _, r := range rules {
		h := hcloud.FirewallRule{Direction: hcloud.FirewallRuleDirection(r.Direction), Protocol: hcloud.FirewallRuleProtocol(r.Protocol)}
		if r.Port != "" {
			h.Port = hcloud.Ptr(r.Port)
		}
		if r.Description != "" {
			h.Description = hcloud.Ptr(r.Description)
		}
		for _, s := range r.SourceIPs {
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				return nil, fmt.Errorf("hetzner: rule %q: %w", r.Description, err)
			}
			h.SourceIPs = append(h.SourceIPs, *n)
		}
		out = append(out, h)
	}
	return out, nil
}

// sameRules compares rule lists as sets of their meaning and description.
func sameRules(a, b []hcloud.FirewallRule) bool {
	ka, kb := ruleKeys(a), ruleKeys(b)
	return slices.Equal(ka, kb)
}

func ruleKeys(rules []hcloud.FirewallRule) []string {
	keys := make([]string, 0, len(rules))
	for _, r := range rules {
		var src, dst []string
		for _, n := range r.SourceIPs {
			src = append(src, n.String())
		}
		for _, n := range r.DestinationIPs {
			dst = append(dst, n.String())
		}
		slices.Sort(src)
		slices.Sort(dst)
		keys = append(keys, strings.Join([]string{string(r.Direction), string(r.Protocol), deref(r.Port),
			strings.Join(src, ","), strings.Join(dst, ","), deref(r.Description)}, "|"))
	}
	slices.Sort(keys)
	return keys
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
