// Package ovh applies an edge document's rules to the OVHcloud Network
// Firewall of one IPv4 address, and carries out the OVHcloud VPS backup
// policy, through github.com/ovh/go-ovh (signed requests). Every operation
// reconciles from the provider's current state, so it is idempotent: running
// it again after a failure completes the work without duplicates, and rules
// that are not in the plan are removed.
package ovh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	goovh "github.com/ovh/go-ovh/ovh"

	"hardbake.dev/hardbake/edge"
)

// Credentials are an OVHcloud API application and consumer key. String
// and GoString never show the secrets, so a credential printed by mistake
// with %v or %#v stays hidden.
type Credentials struct {
	// Endpoint is an endpoint name known to go-ovh ("ovh-eu", "ovh-ca",
	// "ovh-us") or an API root URL such as https://eu.api.ovh.com/1.0.
	Endpoint          string
	ApplicationKey    string
	ApplicationSecret string
	ConsumerKey       string
}

func (c Credentials) String() string {
	return fmt.Sprintf("ovh credentials for %s (application key set: %t)", c.Endpoint, c.ApplicationKey != "")
}

// GoString hides the secrets from %#v.
func (c Credentials) GoString() string { return c.String() }

// Options tune polling. Zero values take the defaults.
type Options struct {
	// PollInterval is the pause between two reads of a pending rule or task.
	PollInterval time.Duration // default 2s
	// Wait bounds the wait for one rule, firewall or task to settle.
	Wait time.Duration // default 5 min
	// Logger receives one line per change; it never sees a credential.
	Logger *slog.Logger
	// HTTPClient replaces go-ovh's default client (tests, proxies).
	HTTPClient *http.Client
}

// Client talks to the OVHcloud API for one set of credentials.
type Client struct {
	api    *goovh.Client
	red    *edge.Redactor
	poll   time.Duration
	wait   time.Duration
	logger *slog.Logger
}

// New checks the credentials are complete and makes a client. It does not
// call the API. Every key must be given: go-ovh would otherwise read
// ~/.ovh.conf and OVH_* variables behind the caller's back.
func New(creds Credentials, opts Options) (*Client, error) {
	red := edge.NewRedactor(creds.ApplicationKey, creds.ApplicationSecret, creds.ConsumerKey)
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"endpoint", creds.Endpoint}, {"application key", creds.ApplicationKey},
		{"application secret", creds.ApplicationSecret}, {"consumer key", creds.ConsumerKey},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ovh: credentials incomplete: no %s", strings.Join(missing, ", "))
	}
	api, err := goovh.NewClient(creds.Endpoint, creds.ApplicationKey, creds.ApplicationSecret, creds.ConsumerKey)
	if err != nil {
		return nil, red.Error(fmt.Errorf("ovh: %w", err))
	}
	if opts.HTTPClient != nil {
		api.Client = opts.HTTPClient
	}
	api.UserAgent = "hardbake"
	c := &Client{api: api, red: red, poll: opts.PollInterval, wait: opts.Wait, logger: opts.Logger}
	if c.poll <= 0 {
		c.poll = 2 * time.Second
	}
	if c.wait <= 0 {
		c.wait = 5 * time.Minute
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c *Client) log(msg string, args ...any) {
	// Values logged are paths, sequences and states, never credentials;
	// redact anyway in case the API echoed one into a message.
	c.logger.Info(c.red.String(msg), args...)
}

// call runs one signed request; errors are redacted and name the call.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var err error
	switch method {
	case http.MethodGet:
		err = c.api.GetWithContext(ctx, path, out)
	case http.MethodPost:
		err = c.api.PostWithContext(ctx, path, body, out)
	case http.MethodPut:
		err = c.api.PutWithContext(ctx, path, body, out)
	case http.MethodDelete:
		err = c.api.DeleteWithContext(ctx, path, out)
	default:
		err = fmt.Errorf("unsupported method %s", method)
	}
	if err != nil {
		return c.red.Error(fmt.Errorf("ovh: %s %s: %w", method, path, err))
	}
	return nil
}

func notFound(err error) bool {
	var ae *goovh.APIError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

// pollUntil calls check every poll interval until it reports done, the
// bounded wait ends or ctx ends.
func (c *Client) pollUntil(ctx context.Context, what string, check func() (bool, string, error)) error {
	deadline := time.Now().Add(c.wait)
	for {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ovh: %s still %q after %s", what, state, c.wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ovh: waiting for %s: %w", what, ctx.Err())
		case <-time.After(c.poll):
		}
	}
}

// firewall is GET /ip/{ip}/firewall/{ipOnFirewall}.
type firewall struct {
	IPOnFirewall string `json:"ipOnFirewall"`
	Enabled      bool   `json:"enabled"`
	State        string `json:"state"`
}

// rule is GET /ip/{ip}/firewall/{ipOnFirewall}/rule/{sequence}. The read
// form differs from the create body: ports are strings ("eq 22" or "22"),
// tcpOption a string, fragments a separate field, source "any" or a CIDR.
type rule struct {
	Sequence        int             `json:"sequence"`
	Action          string          `json:"action"`
	Protocol        string          `json:"protocol"`
	Source          *string         `json:"source"`
	DestinationPort *string         `json:"destinationPort"`
	SourcePort      *string         `json:"sourcePort"`
	TCPOption       json.RawMessage `json:"tcpOption"`
	Fragments       *bool           `json:"fragments"`
	State           string          `json:"state"`
}

// key is a rule's meaning in one comparable form, for both forms.
type key struct {
	Action, Protocol, Source string
	DstPort, SrcPort         int
	TCPOption                string
	Fragments                bool
}

func wantKey(r edge.OVHRule) key {
	k := key{Action: r.Action, Protocol: r.Protocol, Source: normSource(r.Source), DstPort: r.DestinationPort, SrcPort: r.SourcePort}
	if r.TCPOption != nil {
		k.TCPOption, k.Fragments = r.TCPOption.Option, r.TCPOption.Fragments
	}
	return k
}

func (r rule) key() key {
	k := key{Action: r.Action, Protocol: r.Protocol, DstPort: portOf(r.DestinationPort), SrcPort: portOf(r.SourcePort)}
	if r.Source != nil {
		k.Source = normSource(*r.Source)
	}
	if r.Fragments != nil {
		k.Fragments = *r.Fragments
	}
	if len(r.TCPOption) > 0 && string(r.TCPOption) != "null" {
		var s string
		var o edge.OVHTCPOption
		if json.Unmarshal(r.TCPOption, &s) == nil {
			k.TCPOption = s
		} else if json.Unmarshal(r.TCPOption, &o) == nil {
			k.TCPOption, k.Fragments = o.Option, o.Fragments
		}
	}
	return k
}

func normSource(s string) string {
	switch s {
	case "", "any", "0.0.0.0/0":
		return ""
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

// portOf reads "eq 22", "22" or nil; 0 means no port match.
func portOf(s *string) int {
	if s == nil {
		return 0
	}
	f := strings.Fields(*s)
	if len(f) == 0 {
		return 0
	}
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		return -1 // a range or another form: never equal to a wanted port
	}
	return n
}

func describe(r edge.OVHRule) string {
	s := fmt.Sprintf("rule %d %s %s", r.Sequence, r.Action, r.Protocol)
	if r.Source != "" {
		s += " from " + r.Source
	}
	if r.SourcePort != 0 {
		s += fmt.Sprintf(" source port %d", r.SourcePort)
	}
	if r.DestinationPort != 0 {
		s += fmt.Sprintf(" port %d", r.DestinationPort)
	}
	if r.TCPOption != nil {
		s += " " + r.TCPOption.Option
	}
	return s
}
