package hetzner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/edgetest"
	"hardbake.dev/hardbake/edge/hetzner"
)

type leakCheck struct {
	logs bytes.Buffer
	seen []string
}

func (l *leakCheck) add(v any) {
	switch v := v.(type) {
	case nil:
	case error:
		l.seen = append(l.seen, v.Error(), fmt.Sprintf("%+v", v))
	default:
		b, _ := json.Marshal(v)
		l.seen = append(l.seen, string(b), fmt.Sprintf("%+v", v))
	}
}

func (l *leakCheck) check(t *testing.T, secrets ...string) {
	t.Helper()
	all := strings.Join(append(l.seen, l.logs.String()), "\n")
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("a credential (%.8s…) appears in a log line, error or outcome", s)
		}
	}
}

func newClient(t *testing.T, f *edgetest.Hetzner, lc *leakCheck, token string) *hetzner.Client {
	t.Helper()
	c, err := hetzner.New(hetzner.Token(token), hetzner.Options{Endpoint: f.Endpoint(), PollInterval: time.Millisecond,
		Wait: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(&lc.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func planRules(t *testing.T, sshPort int) []edge.HetznerRule {
	t.Helper()
	in := &edge.Input{Profile: "p", InstanceID: "i-1", SSHPort: sshPort, ICMP: true, Services: []edge.Service{
		{Port: 443, Proto: "tcp", Any: true},
		{Port: 9100, Proto: "tcp", Sources: []edge.Source{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, {Prefix: netip.MustParsePrefix("2001:db8::/32")}}},
	}}
	rules, err := edge.HetznerRules(in)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func checkHolds(t *testing.T, f *edgetest.Hetzner, name string, server int64, rules []edge.HetznerRule) {
	t.Helper()
	fws := f.Firewalls(name)
	if len(fws) != 1 {
		t.Fatalf("%d firewalls named %s, want 1", len(fws), name)
	}
	got, _ := json.Marshal(fws[0].Rules)
	want, _ := json.Marshal(rules)
	if string(got) != string(want) {
		t.Errorf("firewall rules\n got %s\nwant %s", got, want)
	}
	if len(fws[0].Servers) != 1 || fws[0].Servers[0] != server {
		t.Errorf("applied to %v, want only server %d", fws[0].Servers, server)
	}
}

func results(o *edge.Outcome) string {
	var s []string
	for _, st := range o.Steps {
		s = append(s, st.Action+"="+st.Result)
	}
	return strings.Join(s, ", ")
}

func TestApply(t *testing.T) {
	f := edgetest.NewHetzner(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.HetznerToken)
	ctx := context.Background()
	name := edge.FirewallName("i-1")
	rules := planRules(t, 50022)

	out, err := c.Apply(ctx, name, 42, rules)
	lc.add(err)
	lc.add(out)
	if err != nil || !out.Complete {
		t.Fatalf("apply: %v %+v", err, out)
	}
	if got := results(out); got != "create firewall=done, apply to server=done" {
		t.Errorf("steps: %s", got)
	}
	checkHolds(t, f, name, 42, rules)

	// Idempotent: nothing changes the second time.
	before := f.Mutations()
	out, err = c.Apply(ctx, name, 42, rules)
	lc.add(err)
	lc.add(out)
	if err != nil || f.Mutations() != before {
		t.Fatalf("re-apply: %v, %d changes", err, f.Mutations()-before)
	}
	if got := results(out); got != "create firewall=unchanged, set rules=unchanged, apply to server=unchanged" {
		t.Errorf("re-apply steps: %s", got)
	}

	// A new SSH port: the rules are replaced by set_rules (the old port is
	// gone), nothing else changes.
	rules = planRules(t, 50023)
	out, err = c.Apply(ctx, name, 42, rules)
	lc.add(err)
	lc.add(out)
	if err != nil || results(out) != "create firewall=unchanged, set rules=done, apply to server=unchanged" {
		t.Fatalf("new port: %v %s", err, results(out))
	}
	checkHolds(t, f, name, 42, rules)
	if f.Creates() != 1 {
		t.Errorf("%d firewalls created, want 1", f.Creates())
	}
	lc.check(t, edgetest.HetznerToken)
}

// TestHalfWay: the apply action fails; the outcome says the firewall and
// its rules exist but are not applied; a retry applies it without creating
// a second firewall.
func TestHalfWay(t *testing.T) {
	f := edgetest.NewHetzner(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.HetznerToken)
	ctx := context.Background()
	name := edge.FirewallName("i-half")
	rules := planRules(t, 50022)
	f.FailApply(1)
	out, err := c.Apply(ctx, name, 7, rules)
	lc.add(err)
	lc.add(out)
	if err == nil || out.Complete || results(out) != "create firewall=done, apply to server=failed" {
		t.Fatalf("want a half-way failure, got %v %s", err, results(out))
	}
	out, err = c.Apply(ctx, name, 7, rules)
	lc.add(err)
	lc.add(out)
	if err != nil || !out.Complete || results(out) != "create firewall=unchanged, set rules=unchanged, apply to server=done" {
		t.Fatalf("retry: %v %s", err, results(out))
	}
	checkHolds(t, f, name, 7, rules)
	if f.Creates() != 1 {
		t.Errorf("%d firewalls created, want 1", f.Creates())
	}
	lc.check(t, edgetest.HetznerToken)
}

func TestToken(t *testing.T) {
	f := edgetest.NewHetzner(t)
	lc := &leakCheck{}
	wrong := "wrong-token-" + edgetest.HetznerToken
	c := newClient(t, f, lc, wrong)
	out, err := c.Apply(context.Background(), "hardbake-x", 1, planRules(t, 50022))
	lc.add(err)
	lc.add(out)
	if err == nil || f.AuthFails() == 0 || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("want an auth failure, got %v", err)
	}
	tok := hetzner.Token(edgetest.HetznerToken)
	lc.seen = append(lc.seen, fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok))
	if _, err := hetzner.New("", hetzner.Options{}); err == nil {
		t.Error("an empty token was accepted")
	}
	lc.check(t, edgetest.HetznerToken, wrong)
}
