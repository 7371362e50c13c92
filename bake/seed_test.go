package bake

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/bake/baketest"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDwbRPMtfACh8WYvLTXcOxfHbAmImwary/CCUrpLChl4 ops@example.com"

func testRequest(t testing.TB) Request {
	t.Helper()
	data, ok := templates.Profile("baseline")
	if !ok {
		t.Fatal("no built-in baseline profile")
	}
	p, err := config.DecodeProfile("builtin:baseline", data)
	if err != nil {
		t.Fatal(err)
	}
	order, src, err := config.DecodeOrder("order.yaml", []byte("hostname: web-1\ninstance_id: vps-1\nssh_port: 2222\nssh_keys: [\""+testKey+"\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return Request{Profile: p, Order: order, Source: src, Agent: AgentRequest{Binary: baketest.StaticELF("amd64")}}
}

func names(files []images.File) string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	return strings.Join(n, ",")
}

func TestSeed(t *testing.T) {
	for _, tc := range []struct {
		mode, seedFiles string
		netcfg          bool
	}{
		{"seed", "user-data,meta-data,hardbake-firstboot-linux-amd64", false},
		{"embed", "user-data,meta-data", false},
		{"url=https://agents.example/a", "user-data,meta-data,network-config", true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			req := testRequest(t)
			req.Agent.Mode, req.NetworkConfig = tc.mode, tc.netcfg
			res, err := Seed(req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Machine.InstanceID != "vps-1" || res.SSHPort != 2222 || !bytes.HasPrefix(res.UserData, []byte("#cloud-config")) {
				t.Errorf("result: instance %q port %d", res.Machine.InstanceID, res.SSHPort)
			}
			if got := names(res.SeedFiles()); got != tc.seedFiles {
				t.Errorf("seed files %s, want %s", got, tc.seedFiles)
			}
			for _, f := range res.Documents() {
				if f.Mode != 0o600 {
					t.Errorf("document %s mode %v", f.Name, f.Mode)
				}
			}
			// One seed, three ways out: a stream, an image, a file.
			var buf bytes.Buffer
			n, err := res.WriteSeed(&buf, images.ISO)
			if err != nil {
				t.Fatal(err)
			}
			img, err := res.Image(images.ISO)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "seed.iso")
			if err := WriteImage(path, img, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			onDisk, _ := os.ReadFile(path)
			if n != int64(buf.Len()) || !bytes.Equal(buf.Bytes(), img.Bytes()) || !bytes.Equal(onDisk, buf.Bytes()) {
				t.Error("streamed, in-memory and written seeds differ")
			}
		})
	}
}

func TestSeedOverrides(t *testing.T) {
	req := testRequest(t)
	host, id := "db-2", "vps-2"
	req.Overrides = Overrides{Hostname: &host, InstanceID: &id, Allow: []string{"443/tcp"}, SSHKeys: []string{testKey},
		Origins: map[string]string{"hostname": "--hostname", "instance_id": "--instance-id"}}
	res, err := Seed(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Machine.Hostname != "db-2" || res.Machine.InstanceID != "vps-2" || len(res.Machine.Allow) != 1 || len(res.Machine.Keys) != 1 {
		t.Errorf("overrides not applied: %+v", res.Machine)
	}
	if req.Order.Hostname != "web-1" {
		t.Error("Seed changed the caller's order")
	}

	// A bad override is reported under the name it came by.
	bad := "bad_host!"
	req.Overrides = Overrides{Hostname: &bad, Origins: map[string]string{"hostname": "--hostname"}}
	_, err = Seed(req)
	var ie *config.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--hostname") {
		t.Fatalf("error %v, want a config input error naming --hostname", err)
	}
}

// TestSeedErrorOrder: order problems come before agent problems, as the
// CLI always reported them.
func TestSeedErrorOrder(t *testing.T) {
	req := testRequest(t)
	req.Order.Hostname = "bad_host!"
	req.Agent = AgentRequest{Mode: "bogus"}
	_, err := Seed(req)
	var ie *config.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want the order's", err)
	}
	req = testRequest(t)
	req.Agent = AgentRequest{Binary: []byte("#!/bin/sh\n")}
	_, err = Seed(req)
	var be *InputError
	if !errors.As(err, &be) || be.Field != "--agent-binary" {
		t.Fatalf("error %v, want one on --agent-binary", err)
	}
}

// TestSeedResolvedAgent: a pre-resolved agent gives the same seed as
// resolving it per request.
func TestSeedResolvedAgent(t *testing.T) {
	req := testRequest(t)
	want, err := Seed(req)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ResolveAgent(req.Agent)
	if err != nil {
		t.Fatal(err)
	}
	req.Agent, req.Resolved = AgentRequest{Mode: "bogus"}, a
	got, err := Seed(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.UserData, want.UserData) {
		t.Error("user-data differs with a pre-resolved agent")
	}
}

func TestCheckUserDataSize(t *testing.T) {
	res, err := Seed(testRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.UserData)
	for _, tc := range []struct {
		max int
		ok  bool
	}{{0, true}, {n, true}, {n - 1, false}} {
		err := res.CheckUserDataSize(tc.max)
		if (err == nil) != tc.ok {
			t.Errorf("max %d of %d: %v", tc.max, n, err)
		}
	}
}

// BenchmarkSeedISO is what one seed.iso request costs a service: resolve,
// render and build the ISO (with a ~3 MB agent on board), streamed out.
func BenchmarkSeedISO(b *testing.B) {
	req := testRequest(b)
	req.Agent.Binary = append(baketest.StaticELF("amd64"), make([]byte, 3<<20)...)
	a, err := ResolveAgent(req.Agent)
	if err != nil {
		b.Fatal(err)
	}
	req.Resolved = a // resolved once, as a service would
	b.ReportAllocs()
	for b.Loop() {
		res, err := Seed(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := res.WriteSeed(io.Discard, images.ISO); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeedISOURLAgent is the same for an agent fetched by URL: the
// seed holds only the cloud-init documents.
func BenchmarkSeedISOURLAgent(b *testing.B) {
	req := testRequest(b)
	req.Agent = AgentRequest{Mode: "url=https://agents.example/a", SHA256: strings.Repeat("ab", 32)}
	b.ReportAllocs()
	for b.Loop() {
		res, err := Seed(req)
		if err != nil {
			b.Fatal(err)
		}
		if res.Agent.Kind != render.AgentURL {
			b.Fatal("not url mode")
		}
		if _, err := res.WriteSeed(io.Discard, images.ISO); err != nil {
			b.Fatal(err)
		}
	}
}
