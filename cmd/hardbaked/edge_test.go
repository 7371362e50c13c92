//go:build cgo && libsqlite3

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/edgetest"
	"hardbake.dev/hardbake/templates"
)

// TestServeEdge: a real hardbaked with --edge-credentials applies an
// order's Hetzner firewall against the local fake API, the order shows
// the outcome, and neither its log nor its answers hold the token.
func TestServeEdge(t *testing.T) {
	hz := edgetest.NewHetzner(t)
	tokenFile, agentDir := setup(t)
	creds := filepath.Join(t.TempDir(), "edge.yaml")
	doc := "hetzner:\n  token: " + edgetest.HetznerToken + "\n  endpoint: " + hz.Endpoint() + "\n"
	if err := os.WriteFile(creds, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	listen, dqliteAddr := ports[0], ports[1]
	p := start(t, "serve", "--data-dir", filepath.Join(t.TempDir(), "state"), "--listen", listen, "--api-token-file", tokenFile,
		"--agent-dir", agentDir, "--dqlite-address", dqliteAddr, "--edge-credentials", creds)
	p.waitHealthy(t, listen)

	prof, _ := templates.Profile("baseline")
	prof = append(bytes.Replace(prof, []byte("name: baseline"), []byte("name: edged"), 1), []byte("\nedge:\n  providers: [hetzner]\n")...)
	if code, body := call(t, "PUT", p.url+"/v1/profiles/edged", prof); code != http.StatusCreated {
		t.Fatalf("PUT profile: %d %s", code, body)
	}
	order := `{"client_order_id":"e-1","profile":"edged","hostname":"web-1","ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkXv2Ge0sEeGtjV3Pr7DRdPYaBTQrSXwVx6cq3qnJSa ops"],"edge_target":{"hetzner_server_id":31}}`
	code, body := call(t, "POST", p.url+"/v1/orders", []byte(order))
	if code != http.StatusCreated {
		t.Fatalf("order: %d %s", code, body)
	}
	var o struct {
		ID         string
		InstanceID string `json:"instance_id"`
		Edge       struct{ State string }
	}
	_ = json.Unmarshal(body, &o)
	answers := []string{string(body)}
	deadline := time.Now().Add(30 * time.Second)
	for o.Edge.State != "applied" {
		if time.Now().After(deadline) {
			t.Fatalf("edge not applied: %s\n%s", body, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
		code, body = call(t, "GET", p.url+"/v1/orders/"+o.ID, nil)
		if code != http.StatusOK {
			t.Fatalf("GET order: %d %s", code, body)
		}
		answers = append(answers, string(body))
		_ = json.Unmarshal(body, &o)
	}
	if fws := hz.Firewalls(edge.FirewallName(o.InstanceID)); len(fws) != 1 || len(fws[0].Servers) != 1 || fws[0].Servers[0] != 31 {
		t.Errorf("the fake holds %+v", fws)
	}
	_, metrics := call(t, "GET", p.url+"/metrics", nil)
	p.stop(t)
	for where, text := range map[string]string{"log": p.stderr.String(), "answers": strings.Join(answers, "\n"), "metrics": string(metrics)} {
		if strings.Contains(text, edgetest.HetznerToken) {
			t.Errorf("the Hetzner token appears in the %s", where)
		}
	}
	if !strings.Contains(p.stderr.String(), "edge_apply=hetzner") || !strings.Contains(p.stderr.String(), "edge applied") {
		t.Errorf("log:\n%s", p.stderr)
	}
}

// TestServeEdgeCredentialsRefused: a credentials file others can read, or
// with an unknown key, is refused with exit 2 before anything is written,
// naming file:line:column and never a value.
func TestServeEdgeCredentialsRefused(t *testing.T) {
	tokenFile, agentDir := setup(t)
	dir := t.TempDir()
	const secret = "hz-refused-secret-token-0123456789"
	write := func(name, doc string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	loose := write("loose.yaml", "hetzner:\n  token: "+secret+"\n", 0o644)
	unknown := write("unknown.yaml", "hetzner:\n  token: "+secret+"\n  tokn: "+secret+"\n", 0o600)
	typed := write("typed.yaml", "hetzner:\n  token: 12345678901234567890\n", 0o600)
	for _, c := range []struct{ file, want string }{
		{loose, "chmod 600"},
		{unknown, unknown + ":3:3: hetzner.tokn: unknown key (allowed: endpoint, token)"},
		{typed, typed + ":2:10: hetzner.token: must be a string"},
		{filepath.Join(dir, "missing.yaml"), "--edge-credentials"},
	} {
		data := filepath.Join(t.TempDir(), "state")
		cmd := exec.Command(binary, "serve", "--data-dir", data, "--api-token-file", tokenFile, "--agent-dir", agentDir,
			"--listen", "127.0.0.1:1", "--edge-credentials", c.file)
		var stderr bytes.Buffer
		cmd.Stderr, cmd.Stdout = &stderr, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
			t.Fatalf("%s: exit %v, want %d\n%s", c.file, err, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: output lacks %q:\n%s", c.file, c.want, stderr.String())
		}
		if strings.Contains(stderr.String(), secret) || strings.Contains(stderr.String(), "12345678901234567890") {
			t.Errorf("%s: a credential in the output:\n%s", c.file, stderr.String())
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%s: the refused run created %s", c.file, data)
		}
	}
}
