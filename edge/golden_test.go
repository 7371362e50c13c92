package edge_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"hardbake.dev/hardbake/edge"
)

var testIP = netip.MustParseAddr("203.0.113.10")

// TestGolden: every provider's document for the built-in profiles and the
// example profile, with every example order.
func TestGolden(t *testing.T) {
	profiles := []struct{ name, ref string }{
		{"baseline", "baseline"},
		{"strict", "strict"},
		{"mirror", "mirror-profile.yaml"},
	}
	orders := []struct{ name, file string }{
		{"minimal", "minimal-order.yaml"},
		{"web", "web-order.yaml"},
		{"db", "db-order.json"},
	}
	for _, p := range profiles {
		for _, o := range orders {
			c := compileExample(t, p.ref, o.file)
			for _, provider := range edge.Providers() {
				name := p.name + "-" + o.name + "." + provider + ".json"
				t.Run(name, func(t *testing.T) {
					doc, err := edge.Build(provider, c.input(t), nil, nil, edge.Options{IP: testIP})
					if err != nil {
						t.Fatal(err)
					}
					got, err := edge.Encode(doc)
					if err != nil {
						t.Fatal(err)
					}
					checkGolden(t, name, got)
					again, _ := edge.Encode(mustBuild(t, provider, c.input(t), nil, nil, edge.Options{IP: testIP}))
					if !bytes.Equal(got, again) {
						t.Error("two builds of the same input differ")
					}
				})
			}
		}
	}
}

// TestGoldenPolicy: a profile with edge and backup sections (passed beside
// the profile until config carries them), without --ip: placeholders.
func TestGoldenPolicy(t *testing.T) {
	c := compileExample(t, "mirror-profile.yaml", "web-order.yaml")
	no := false
	pol := &edge.Policy{Providers: []string{"ovh", "hetzner"}, IPv6: edge.IPv6Warn, OVH: &edge.OVHPolicy{UDPReplyPorts: []int{53}}}
	backup := &edge.BackupPolicy{Provider: edge.BackupOVHVPS, Time: "02:30"}
	for _, provider := range []string{"ovh", "hetzner"} {
		t.Run(provider, func(t *testing.T) {
			got, err := edge.Encode(mustBuild(t, provider, c.input(t), pol, backup, edge.Options{ServiceName: "vps-0a1b2c3d.vps.ovh.net"}))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "policy-mirror-web."+provider+".json", got)
		})
	}
	// No automated backup: only the snapshot calls.
	doc := mustBuild(t, "ovh", c.input(t), pol, &edge.BackupPolicy{Provider: edge.BackupOVHVPS, Automated: &no}, edge.Options{})
	if doc.Backup == nil || doc.Backup.Automated || len(doc.Backup.Requests) != 2 || !strings.HasSuffix(doc.Backup.Requests[1].Path, "/createSnapshot") {
		t.Errorf("backup without automated: %+v", doc.Backup)
	}
	// digitalocean is not in edge.providers: refused, naming the key.
	_, err := edge.Build("digitalocean", c.input(t), pol, nil, edge.Options{})
	wantIssue(t, err, "profile edge.providers", `does not list "digitalocean"`)
}

func mustBuild(t testing.TB, provider string, in *edge.Input, pol *edge.Policy, b *edge.BackupPolicy, opts edge.Options) *edge.Document {
	t.Helper()
	doc, err := edge.Build(provider, in, pol, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// wantIssue checks that err is an *edge.InputError with an issue at origin
// whose reason contains want.
func wantIssue(t testing.TB, err error, origin, want string) {
	t.Helper()
	ie, ok := err.(*edge.InputError)
	if !ok {
		t.Fatalf("want *edge.InputError at %s (%q), got %T %v", origin, want, err, err)
	}
	for _, is := range ie.Issues {
		if is.Origin.String() == origin && strings.Contains(is.Reason, want) {
			return
		}
	}
	t.Fatalf("no issue at %s containing %q in:\n%v", origin, want, err)
}
