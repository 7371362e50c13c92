package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
)

// DocFlag is the Origin document of a command-line flag (Path is the flag).
const DocFlag = "flag"

// Document is what `hardbake edge` prints and `GET /v1/orders/{id}/edge`
// returns: the API requests that give one machine its edge firewall on one
// provider, in the order they are sent.
type Document struct {
	Provider   string `json:"provider"`
	Profile    string `json:"profile"`
	InstanceID string `json:"instance_id"`
	// SSHPort is the plan's SSH port, repeated so a reader can check it.
	SSHPort int `json:"ssh_port"`
	// IP is the machine's address when known (--ip); paths carry
	// placeholders such as {ip} otherwise.
	IP    string    `json:"ip,omitempty"`
	Rules RuleCount `json:"rules"`
	// Warnings say what the edge cannot do for this machine (e.g. filter
	// IPv6 on OVH). Never null, so consumers can iterate without a check.
	Warnings []string  `json:"warnings"`
	Requests []Request `json:"requests"`
	// Backup is the profile's backup policy for this provider, if any.
	Backup *BackupDocument `json:"backup,omitempty"`
}

// RuleCount is the rules the document uses against the provider's limit.
type RuleCount struct {
	Used  int    `json:"used"`
	Limit int    `json:"limit"`
	Unit  string `json:"unit"` // what is counted, e.g. "rules per IP"
}

// Request is one API call: method, path relative to the provider's API
// root, and its JSON body.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   any    `json:"body,omitempty"`
	// Note says when the call is made or what a placeholder stands for.
	Note string `json:"note,omitempty"`
}

// Options are what the caller knows about the machine beyond its order.
type Options struct {
	// IP is the machine's public IPv4 address (OVH's firewall lives on it).
	IP netip.Addr
	// ServiceName is the OVHcloud VPS service name for backups
	// (vps-xxxxxxx.vps.ovh.net); a placeholder when empty.
	ServiceName string
}

// Build makes provider's document for in under pol (and backup, which may
// be nil). Problems the user must fix are an *InputError naming the value.
func Build(provider string, in *Input, pol *Policy, backup *BackupPolicy, opts Options) (*Document, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	var l issues
	l = append(l, pol.Validate("edge")...)
	l = append(l, backup.Validate("backup")...)
	if !pol.Wants(provider) && len(l) == 0 {
		l.add(Origin{Doc: DocProfile, Path: "edge.providers"}, codeInvalidChoice,
			fmt.Sprintf("does not list %q, so the profile emits no edge rules for it (listed: %v)", provider, pol.Providers))
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	doc := &Document{Provider: provider, Profile: in.Profile, InstanceID: in.InstanceID, SSHPort: in.SSHPort, Warnings: []string{}}
	if opts.IP.IsValid() {
		doc.IP = opts.IP.String()
	}
	if in.HostFirewallOff {
		doc.Warnings = append(doc.Warnings, provider+": the profile's firewall.enabled is false: the host does not filter, so the edge is the only filter (it allows only SSH and firewall.services)")
	}
	var err error
	switch provider {
	case ProviderOVH:
		err = buildOVH(doc, in, pol, opts)
	case ProviderHetzner:
		err = buildHetzner(doc, in)
	case ProviderDigitalOcean:
		err = buildDigitalOcean(doc, in)
	default:
		return nil, &InputError{Issues: []Issue{{Origin: Origin{Doc: DocFlag, Path: "--provider"}, Code: codeInvalidChoice,
			Reason: fmt.Sprintf("unknown provider %q (want ovh, hetzner or digitalocean)", provider)}}}
	}
	if err != nil {
		return nil, err
	}
	if backup != nil && backupProvider(backup.Provider) == provider {
		doc.Backup = BuildBackup(backup, in, opts)
	}
	return doc, nil
}

func backupProvider(b string) string {
	if b == BackupOVHVPS {
		return ProviderOVH
	}
	return ""
}

// Encode is the canonical form of a document: indented JSON, no HTML
// escaping, one trailing newline. Struct fields fix the key order, so the
// same input gives the same bytes.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("edge: encode: %w", err)
	}
	return buf.Bytes(), nil
}
