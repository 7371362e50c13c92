//go:build cgo && libsqlite3

package service

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSeedISOMatchesCLI: the service's seed.iso is byte for byte what
// `hardbake iso` writes for the same profile, order and agent.
func TestSeedISOMatchesCLI(t *testing.T) {
	dir := t.TempDir()
	cli := filepath.Join(dir, "hardbake")
	build := exec.Command("go", "build", "-o", cli, "../cmd/hardbake")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the CLI: %v\n%s", err, out)
	}
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	for _, c := range []struct {
		name, extra string
		args        func(o OrderResponse, agent string) []string
	}{
		{"seed", `, "arch": "arm64"`, func(o OrderResponse, agent string) []string {
			return []string{"--arch", "arm64", "--agent-binary", agent}
		}},
		{"url", `, "agent": "url", "network_config": true`, func(o OrderResponse, agent string) []string {
			return []string{"--agent", "url=" + o.Agent.URL, "--agent-binary", agent, "--network-config"}
		}},
		{"embed", `, "agent": "embed"`, func(o OrderResponse, agent string) []string {
			return []string{"--agent", "embed", "--agent-binary", agent}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := e.createOrder(orderBody(t, "id-"+c.name, key, c.extra))
			r := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
			want(t, r, http.StatusOK)

			bin, _ := e.agents.forArch(o.Agent.Arch)
			agent := filepath.Join(dir, "agent-"+o.Agent.Arch)
			order := filepath.Join(dir, "order-"+c.name+".yaml")
			out := filepath.Join(dir, c.name+".iso")
			if err := os.WriteFile(agent, bin, 0o755); err != nil {
				t.Fatal(err)
			}
			doc := fmt.Sprintf("hostname: web-1.example.com\nssh_keys:\n  - %s\nallow: [\"443/tcp\"]\n", key)
			if err := os.WriteFile(order, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			// The order's report endpoint is part of its input.
			keyFile := filepath.Join(dir, "report-key-"+c.name)
			if err := os.WriteFile(keyFile, []byte(o.Report.Key+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"iso", "--profile", "baseline", "--order", order, "-o", out,
				"--report-url", o.Report.URL, "--report-key-file", keyFile}, c.args(o, agent)...)
			if outp, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
				t.Fatalf("hardbake %v: %v\n%s", args, err, outp)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.body, want) {
				t.Fatalf("seed.iso from the service (%d bytes) differs from hardbake iso (%d bytes)", len(r.body), len(want))
			}
		})
	}
}
