package render_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/render"
)

// Compile is called by front ends that validated their profile, but a
// profile built in Go (or changed after validation) must get an error
// naming the field, never a panic or a silently wrong value.
func TestCompileUnvalidatedProfile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *config.Profile)
		want   string
	}{
		{"source that is no CIDR", func(p *config.Profile) {
			p.Firewall.Services = append(p.Firewall.Services, config.Service{Port: 8443, Proto: "tcp", Sources: []string{"not-a-network"}})
		}, "sources[0]"},
		{"login grace time that is no duration", func(p *config.Profile) {
			p.SSH.LoginGraceTime = "soon"
		}, "ssh.loginGraceTime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProfile(t, "baseline")
			data, err := os.ReadFile(filepath.Join("..", "examples", "web-order.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			o, src, err := config.DecodeOrder("web-order.yaml", data)
			if err != nil {
				t.Fatal(err)
			}
			m, err := o.Resolve(p, src)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(p)
			_, err = render.Compile(p, m, fakeAgent, render.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
