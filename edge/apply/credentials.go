package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	goovh "github.com/ovh/go-ovh/ovh"
	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge/hetzner"
	"hardbake.dev/hardbake/edge/ovh"
)

// MaxCredentialsBytes bounds the credentials file; a real one is a few
// hundred bytes.
const MaxCredentialsBytes = 64 << 10

// ParseCredentials reads the operator's provider credentials (hardbaked
// serve --edge-credentials FILE), one YAML or JSON document:
//
//	ovh:
//	  endpoint: ovh-eu               # ovh-eu, ovh-ca, ovh-us, … or an https:// API root
//	  applicationKey: …
//	  applicationSecret: …
//	  consumerKey: …
//	hetzner:
//	  token: …
//	  endpoint: https://api.hetzner.cloud/v1   # optional
//
// Either section may be left out; at least one must be there. Decoding is
// strict: unknown or duplicate keys, a value that is not a plain string,
// an empty value, aliases and tags are refused as a *config.InputError
// naming file:line:column and the key path. No message ever shows a
// value: they are secrets.
func ParseCredentials(file string, data []byte) (Credentials, error) {
	p := &credParser{file: file}
	if len(data) > MaxCredentialsBytes {
		p.add(config.Pos{}, "", "file is larger than %d bytes", MaxCredentialsBytes)
		return Credentials{}, p.err()
	}
	root, err := p.document(data)
	if err != nil || root == nil {
		return Credentials{}, err
	}
	var creds Credentials
	sections := p.mapping("", root, []string{"hetzner", "ovh"})
	if len(sections) == 0 && len(p.errs) == 0 {
		p.add(pos(root), "", "names no provider: give an ovh: or a hetzner: section")
	}
	if n, ok := sections["ovh"]; ok {
		v := p.mapping("ovh", n, []string{"applicationKey", "applicationSecret", "consumerKey", "endpoint"})
		o := &ovh.Credentials{}
		for key, dst := range map[string]*string{"endpoint": &o.Endpoint, "applicationKey": &o.ApplicationKey,
			"applicationSecret": &o.ApplicationSecret, "consumerKey": &o.ConsumerKey} {
			*dst = p.required("ovh", n, v, key)
		}
		if o.Endpoint != "" && goovh.Endpoints[o.Endpoint] == "" {
			if reason := checkEndpoint(o.Endpoint); reason != "" {
				p.add(pos(v["endpoint"]), "ovh.endpoint", "%s (or an endpoint name: %s)", reason, strings.Join(ovhEndpointNames(), ", "))
			}
		}
		creds.OVH = o
	}
	if n, ok := sections["hetzner"]; ok {
		v := p.mapping("hetzner", n, []string{"endpoint", "token"})
		creds.Hetzner = hetzner.Token(p.required("hetzner", n, v, "token"))
		if e, ok := v["endpoint"]; ok && e != nil {
			creds.HetznerEndpoint = p.required("hetzner", n, v, "endpoint")
			if reason := checkEndpoint(creds.HetznerEndpoint); creds.HetznerEndpoint != "" && reason != "" {
				p.add(pos(e), "hetzner.endpoint", "%s", reason)
			}
		}
	}
	if err := p.err(); err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// checkEndpoint accepts an https:// URL, or http:// to a loopback address
// (a local test API): the credentials must not cross a network in clear.
func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "not an API root URL such as https://eu.api.ovh.com/1.0"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
			return ""
		}
		return "http:// is only for a loopback address: credentials must not travel in clear; use https://"
	}
	return "the URL must start with https://"
}

func ovhEndpointNames() []string {
	names := make([]string, 0, len(goovh.Endpoints))
	for k := range goovh.Endpoints {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

type credParser struct {
	file string
	errs []*config.FieldError
}

func pos(n *yaml.Node) config.Pos { return config.Pos{Line: n.Line, Col: n.Column} }

func (p *credParser) add(at config.Pos, path, format string, args ...any) {
	p.errs = append(p.errs, &config.FieldError{File: p.file, Pos: at, Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (p *credParser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &config.InputError{Errs: p.errs}
}

// document parses exactly one document and returns its root node.
func (p *credParser) document(data []byte) (*yaml.Node, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		p.add(config.Pos{}, "", "empty document")
		return nil, p.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(config.Pos{}, "", "empty document")
		} else {
			p.add(syntaxPos(err), "", "invalid YAML")
		}
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(pos(&extra), "", "only one document is allowed")
		return nil, p.err()
	} else if !errors.Is(err, io.EOF) {
		p.add(syntaxPos(err), "", "invalid YAML")
		return nil, p.err()
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.add(pos(root), "", "must be a mapping with ovh: and/or hetzner:")
		return nil, p.err()
	}
	return root, nil
}

// syntaxPos takes only the line from a yaml.v3 syntax error: its text is
// not shown, since a parser may quote the input, and the input is secret.
func syntaxPos(err error) config.Pos {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			n := 0
			for _, c := range rest[:i] {
				if c < '0' || c > '9' {
					return config.Pos{}
				}
				n = n*10 + int(c-'0')
				if n > 1<<24 {
					return config.Pos{}
				}
			}
			return config.Pos{Line: n, Col: 1}
		}
	}
	return config.Pos{}
}

// mapping returns the values of a mapping node by key, refusing unknown,
// duplicate and non-string keys.
func (p *credParser) mapping(path string, n *yaml.Node, allowed []string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.add(pos(n), path, "must be a mapping (allowed keys: %s)", strings.Join(allowed, ", "))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			p.add(pos(k), path, "keys must be plain strings")
			continue
		}
		kp := join(path, k.Value)
		if !slices.Contains(allowed, k.Value) {
			p.add(pos(k), kp, "unknown key (allowed: %s)", strings.Join(allowed, ", "))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			p.add(pos(k), kp, "duplicate key (first on line %d)", prev.Line)
			continue
		}
		out[k.Value] = v
	}
	return out
}

// required is the non-empty string at key of the mapping n.
func (p *credParser) required(path string, n *yaml.Node, values map[string]*yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	v, ok := values[key]
	if !ok {
		p.add(pos(n), join(path, key), "required")
		return ""
	}
	s := p.str(join(path, key), v)
	if s == "" && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
		p.add(pos(v), join(path, key), "must not be empty")
	}
	return s
}

// str is a plain string value; anything else (a number, a boolean, null,
// a list, an alias, a tagged value) is refused without showing it.
func (p *credParser) str(path string, n *yaml.Node) string {
	switch {
	case n.Kind == yaml.AliasNode:
		p.add(pos(n), path, "aliases are not allowed here; write the value")
	case n.Kind != yaml.ScalarNode:
		p.add(pos(n), path, "must be a string, not a mapping or list")
	case n.Style&yaml.TaggedStyle != 0 && n.Tag != "!!str":
		p.add(pos(n), path, "explicit YAML tags are not allowed here")
	case n.Tag != "!!str":
		p.add(pos(n), path, "must be a string (quote the value)")
	case strings.ContainsAny(n.Value, " \t\r\n"):
		p.add(pos(n), path, "must not contain white space (a copy-and-paste error?)")
	default:
		return n.Value
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
