package apply_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/apply"
	"hardbake.dev/hardbake/edge/ovh"
)

func input() *edge.Input {
	return &edge.Input{Profile: "p", InstanceID: "i-1", SSHPort: 50022, ICMP: true}
}

// TestRefusals: no request reaches a provider when there are no
// credentials, the profile does not want the provider, the rules do not
// fit, or the provider is render-only.
func TestRefusals(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); w.WriteHeader(500) }))
	defer srv.Close()
	creds := apply.Credentials{OVH: &ovh.Credentials{Endpoint: srv.URL + "/1.0", ApplicationKey: "ak", ApplicationSecret: "as", ConsumerKey: "ck"}}
	ctx := context.Background()
	tgt := apply.Target{IP: netip.MustParseAddr("203.0.113.10")}

	if _, err := apply.Edge(ctx, apply.Credentials{}, apply.Options{}, "ovh", input(), nil, tgt); err == nil || !strings.Contains(err.Error(), "no credentials for ovh") {
		t.Errorf("no credentials: %v", err)
	}
	_, err := apply.Edge(ctx, creds, apply.Options{}, "ovh", input(), &edge.Policy{Providers: []string{"hetzner"}}, tgt)
	var ie *edge.InputError
	if !errors.As(err, &ie) || ie.Issues[0].Origin.Path != "edge.providers" {
		t.Errorf("unwanted provider: %v", err)
	}
	big := input()
	for p := range 20 {
		big.Services = append(big.Services, edge.Service{Port: 1000 + p, Proto: "tcp", Any: true,
			Origin: edge.Origin{Doc: edge.DocProfile, Path: "firewall.services"}})
	}
	if _, err := apply.Edge(ctx, creds, apply.Options{}, "ovh", big, nil, tgt); !errors.As(err, &ie) {
		t.Errorf("too many rules: %v", err)
	}
	if _, err := apply.Edge(ctx, apply.Credentials{Hetzner: "tok"}, apply.Options{}, "digitalocean", input(), nil, tgt); err == nil {
		t.Error("digitalocean applied")
	}
	if out, err := apply.AfterHardened(ctx, apply.Credentials{}, apply.Options{}, nil, input(), tgt); out != nil || err != nil {
		t.Errorf("no backup policy: %v %v", out, err)
	}
	if _, err := apply.AfterHardened(ctx, apply.Credentials{}, apply.Options{}, &edge.BackupPolicy{Provider: edge.BackupOVHVPS}, input(), tgt); err == nil {
		t.Error("snapshot without credentials")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests reached the provider", n)
	}
	// With everything in place the OVH client is called (and fails here).
	out, err := apply.Edge(ctx, creds, apply.Options{}, "ovh", input(), nil, tgt)
	if err == nil || calls.Load() == 0 || out == nil || out.Complete {
		t.Errorf("apply did not reach the API: %v %+v", err, out)
	}
}
