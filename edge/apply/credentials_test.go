package apply_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge/apply"
)

const (
	secretAK  = "AK-credtest-4242424242"
	secretAS  = "AS-credtest-secret-0123456789abcdef"
	secretCK  = "CK-credtest-consumer-9876543210"
	secretTok = "hz-credtest-token-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
)

var goodCreds = `ovh:
  endpoint: ovh-eu
  applicationKey: ` + secretAK + `
  applicationSecret: ` + secretAS + `
  consumerKey: ` + secretCK + `
hetzner:
  token: ` + secretTok + `
`

func TestParseCredentials(t *testing.T) {
	c, err := apply.ParseCredentials("creds.yaml", []byte(goodCreds))
	if err != nil {
		t.Fatal(err)
	}
	if c.OVH == nil || c.OVH.Endpoint != "ovh-eu" || c.OVH.ApplicationKey != secretAK || c.OVH.ApplicationSecret != secretAS ||
		c.OVH.ConsumerKey != secretCK || string(c.Hetzner) != secretTok || c.HetznerEndpoint != "" {
		t.Fatalf("parsed %#v", c)
	}
	if !c.Has("ovh") || !c.Has("hetzner") || c.Has("digitalocean") {
		t.Error("Has")
	}
	if got := strings.Join(c.Secrets(), ","); got != secretAK+","+secretAS+","+secretCK+","+secretTok {
		t.Errorf("Secrets %q", got)
	}
	// JSON is YAML; one provider is enough; an API root URL is an endpoint.
	c, err = apply.ParseCredentials("creds.json", []byte(`{"hetzner": {"token": "`+secretTok+`", "endpoint": "http://127.0.0.1:8080/v1"}}`))
	if err != nil || c.OVH != nil || c.HetznerEndpoint != "http://127.0.0.1:8080/v1" {
		t.Fatalf("json: %v %#v", err, c)
	}
	c, err = apply.ParseCredentials("c", []byte(strings.Replace(goodCreds, "ovh-eu", "https://eu.api.ovh.com/1.0", 1)))
	if err != nil || c.OVH.Endpoint != "https://eu.api.ovh.com/1.0" {
		t.Fatalf("URL endpoint: %v", err)
	}
}

// TestCredentialErrors: every refusal names file:line:column and the key
// path, and no message shows a value.
func TestCredentialErrors(t *testing.T) {
	for _, c := range []struct {
		name, doc, want string
	}{
		{"unknown top key", goodCreds + "aws:\n  key: " + secretAK + "\n", "creds.yaml:8:1: aws: unknown key (allowed: hetzner, ovh)"},
		{"unknown ovh key", strings.Replace(goodCreds, "  consumerKey:", "  consumer_key:", 1), "creds.yaml:5:3: ovh.consumer_key: unknown key (allowed: applicationKey, applicationSecret, consumerKey, endpoint)"},
		{"missing key", strings.Replace(goodCreds, "  consumerKey: "+secretCK+"\n", "", 1), "creds.yaml:2:3: ovh.consumerKey: required"},
		{"duplicate", goodCreds + "  token: " + secretTok + "\n", "creds.yaml:8:3: hetzner.token: duplicate key (first on line 7)"},
		{"number", "hetzner:\n  token: 123456789012345\n", "creds.yaml:2:10: hetzner.token: must be a string (quote the value)"},
		{"empty", "hetzner:\n  token: \"\"\n", "creds.yaml:2:10: hetzner.token: must not be empty"},
		{"null", "hetzner:\n  token:\n", "creds.yaml:2:9: hetzner.token: must be a string (quote the value)"},
		{"space", "hetzner:\n  token: \"" + secretTok + " x\"\n", "creds.yaml:2:10: hetzner.token: must not contain white space"},
		{"list", "hetzner:\n  token: [" + secretTok + "]\n", "creds.yaml:2:10: hetzner.token: must be a string, not a mapping or list"},
		{"tag", "hetzner:\n  token: !!binary " + secretTok + "\n", "creds.yaml:2:10: hetzner.token: explicit YAML tags are not allowed here"},
		{"alias", "hetzner:\n  endpoint: &a https://x.example\n  token: *a\n", "creds.yaml:3:10: hetzner.token: aliases are not allowed here"},
		{"no provider", "{}\n", "creds.yaml:1:1: names no provider"},
		{"not a mapping", secretTok + "\n", "creds.yaml:1:1: must be a mapping"},
		{"syntax", "hetzner:\n  token: \"" + secretTok + "\n", "creds.yaml:2:1: invalid YAML"},
		{"two documents", goodCreds + "---\nhetzner: {}\n", "creds.yaml:8:1: only one document is allowed"},
		{"empty file", "  \n", "creds.yaml: empty document"},
		{"clear text", strings.Replace(goodCreds, "ovh-eu", "http://api.example.com/1.0", 1), "creds.yaml:2:13: ovh.endpoint: http:// is only for a loopback address"},
		{"unknown endpoint", strings.Replace(goodCreds, "ovh-eu", "ovh-mars", 1), "creds.yaml:2:13: ovh.endpoint: not an API root URL such as https://eu.api.ovh.com/1.0 (or an endpoint name: kimsufi-ca"},
		{"section not a mapping", "ovh: " + secretAK + "\n", "creds.yaml:1:6: ovh: must be a mapping"},
		{"too large", "hetzner:\n  token: " + strings.Repeat("x", apply.MaxCredentialsBytes) + "\n", "creds.yaml: file is larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := apply.ParseCredentials("creds.yaml", []byte(c.doc))
			var ie *config.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *config.InputError", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) && !strings.Contains(err.Error(), "\n"+c.want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", err, c.want)
			}
			for _, s := range []string{secretAK, secretAS, secretCK, secretTok, "123456789012345"} {
				if strings.Contains(err.Error(), s) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), s) {
					t.Errorf("the error shows a credential value: %s", err)
				}
			}
		})
	}
}

// FuzzParseCredentials: any input parses or is refused without a panic; a
// refusal names the file and shows no long value from the document; an
// accepted document has every credential non-empty and without spaces.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(goodCreds))
	f.Add([]byte(`{"hetzner": {"token": "` + secretTok + `", "endpoint": "http://127.0.0.1:1/v1"}}`))
	f.Add([]byte("hetzner:\n  token: 123456789012345\n"))
	f.Add([]byte("ovh: &x {endpoint: ovh-eu}\nhetzner: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := apply.ParseCredentials("f.yaml", data)
		if err == nil {
			for _, s := range append(c.Secrets(), func() []string {
				if c.OVH != nil {
					return []string{c.OVH.Endpoint}
				}
				return nil
			}()...) {
				if s == "" || strings.ContainsAny(s, " \t\r\n") {
					t.Fatalf("accepted an empty or spaced value: %q", s)
				}
			}
			if c.OVH == nil && c.Hetzner == "" {
				t.Fatal("accepted a document with no provider")
			}
			return
		}
		var ie *config.InputError
		if !errors.As(err, &ie) {
			t.Fatalf("not an input error: %v", err)
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil {
			return
		}
		for _, v := range scalarValues(&doc) {
			if len(v) < 16 || strings.Contains(v, "line") || strings.Contains(v, ",") {
				continue // short, or could be a message's own words
			}
			for _, fe := range ie.Errs {
				if fe.File != "f.yaml" {
					t.Fatalf("error without the file: %v", fe)
				}
				if strings.Contains(fe.Reason, v) {
					t.Fatalf("the reason shows a value %q: %v", v, fe)
				}
			}
		}
	})
}

// scalarValues are the scalars in value positions (not keys).
func scalarValues(n *yaml.Node) []string {
	var out []string
	switch n.Kind {
	case yaml.ScalarNode:
		out = append(out, n.Value)
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			out = append(out, scalarValues(n.Content[i])...)
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, scalarValues(c)...)
		}
	}
	return out
}
