package ovh_test

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
	"hardbake.dev/hardbake/edge/ovh"
)

var ip = netip.MustParseAddr("203.0.113.10")

// leakCheck collects everything a caller could show — log lines, errors,
// outcomes — and fails the test if a credential is in any of it.
type leakCheck struct {
	logs bytes.Buffer
	seen []string
}

func (l *leakCheck) add(v any) {
	switch v := v.(type) {
	case nil:
	case error:
		l.seen = append(l.seen, v.Error(), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v))
	default:
		b, _ := json.Marshal(v)
		l.seen = append(l.seen, string(b), fmt.Sprintf("%+v", v))
	}
}

func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	all := strings.Join(append(l.seen, l.logs.String()), "\n")
	for _, secret := range []string{edgetest.OVHAppKey, edgetest.OVHSecret, edgetest.OVHConsumer} {
		if strings.Contains(all, secret) {
			t.Errorf("a credential (%.6s…) appears in a log line, error or outcome", secret)
		}
	}
}

func newClient(t *testing.T, f *edgetest.OVH, lc *leakCheck, secret string) *ovh.Client {
	t.Helper()
	c, err := ovh.New(ovh.Credentials{Endpoint: f.Endpoint(), ApplicationKey: edgetest.OVHAppKey, ApplicationSecret: secret, ConsumerKey: edgetest.OVHConsumer},
		ovh.Options{PollInterval: time.Millisecond, Wait: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(&lc.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// planRules are the rules of a machine with SSH on 50022 and two services.
func planRules(t *testing.T) []edge.OVHRule {
	t.Helper()
	in := &edge.Input{Profile: "p", InstanceID: "i-1", SSHPort: 50022, ICMP: true, Services: []edge.Service{
		{Port: 443, Proto: "tcp", Any: true},
		{Port: 9100, Proto: "tcp", Sources: []edge.Source{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}},
	}}
	rules, _, err := edge.OVHRules(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func checkHolds(t *testing.T, f *edgetest.OVH, rules []edge.OVHRule) {
	t.Helper()
	got, enabled := f.Rules(ip.String())
	if !enabled {
		t.Error("firewall not enabled")
	}
	if len(got) != len(rules) {
		t.Errorf("firewall holds %d rules, want %d: %v", len(got), len(rules), got)
	}
	for _, r := range rules {
		if g, ok := got[r.Sequence]; !ok || jsonOf(g) != jsonOf(r) {
			t.Errorf("sequence %d holds %+v, want %+v", r.Sequence, g, r)
		}
	}
	if len(f.BadSignatures()) > 0 {
		t.Errorf("requests with bad signatures: %v", f.BadSignatures())
	}
}

func results(o *edge.Outcome) map[string]int {
	m := map[string]int{}
	for _, s := range o.Steps {
		m[s.Result]++
	}
	return m
}

func TestApplyFreshThenIdempotent(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	rules := planRules(t)
	out, err := c.Apply(context.Background(), ip, rules)
	lc.add(err)
	lc.add(out)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Complete || results(out)[edge.ResultDone] != len(rules)+2 {
		t.Errorf("outcome %+v", out)
	}
	checkHolds(t, f, rules)
	if f.TimeCalls() != 1 {
		t.Errorf("/auth/time called %d times, want 1", f.TimeCalls())
	}
	// Second run: nothing changes at the provider.
	before := f.Mutations()
	out, err = c.Apply(context.Background(), ip, rules)
	lc.add(err)
	lc.add(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Mutations() != before {
		t.Errorf("re-apply made %d changes, want none", f.Mutations()-before)
	}
	if r := results(out); r[edge.ResultDone] != 0 || r[edge.ResultUnchanged] != len(rules)+2 || !out.Complete {
		t.Errorf("re-apply outcome %+v", out)
	}
	lc.check(t)
}

// TestReconcile: rules not in the plan are removed, a rule whose content
// differs is replaced, and a firewall already full (20 rules) is emptied
// before the new rules go in, within the 20-rule limit.
func TestReconcile(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	stale := make([]edge.OVHRule, 0, 20)
	for seq := range 20 {
		stale = append(stale, edge.OVHRule{Sequence: seq, Action: "permit", Protocol: "udp", DestinationPort: 7000 + seq})
	}
	if _, err := c.Apply(context.Background(), ip, stale); err != nil {
		t.Fatal(err)
	}
	rules := planRules(t)
	out, err := c.Apply(context.Background(), ip, rules)
	lc.add(err)
	lc.add(out)
	if err != nil {
		t.Fatal(err)
	}
	checkHolds(t, f, rules)
	if r := results(out); r["done"] != 20+len(rules) {
		t.Errorf("want 20 deletions and %d creations, got %+v", len(rules), out.Steps)
	}
	// One changed rule: only it is replaced.
	rules[4].DestinationPort = 50023
	before := f.Mutations()
	if _, err := c.Apply(context.Background(), ip, rules); err != nil {
		t.Fatal(err)
	}
	checkHolds(t, f, rules)
	if n := f.Mutations() - before; n != 2 {
		t.Errorf("changing one rule made %d changes, want 2 (delete, create)", n)
	}
	lc.check(t)
}

// TestHalfWay: the API fails while creating rule 4; the outcome says which
// rules were applied; a retry completes it, creating every rule once.
func TestHalfWay(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	rules := planRules(t)
	f.FailRulePOST(4, 1)
	out, err := c.Apply(context.Background(), ip, rules)
	lc.add(err)
	lc.add(out)
	if err == nil || out.Complete || out.Error == "" {
		t.Fatalf("want a failure, got %v %+v", err, out)
	}
	var created []string
	for _, s := range out.Steps {
		if s.Action == "create rule" {
			created = append(created, s.Object+"="+s.Result)
		}
	}
	if len(created) != 5 || !strings.HasSuffix(created[4], "port 50022=failed") || !strings.HasPrefix(created[3], "rule 3 permit icmp=done") {
		t.Errorf("outcome does not record what was applied: %q", created)
	}
	if _, enabled := f.Rules(ip.String()); enabled {
		t.Error("firewall enabled with half its rules")
	}
	out, err = c.Apply(context.Background(), ip, rules)
	lc.add(err)
	lc.add(out)
	if err != nil || !out.Complete {
		t.Fatalf("retry: %v %+v", err, out)
	}
	checkHolds(t, f, rules)
	for _, r := range rules {
		if n := f.RuleCreates(r.Sequence); n != 1 {
			t.Errorf("rule %d created %d times", r.Sequence, n)
		}
	}
	if r := results(out); r[edge.ResultUnchanged] != 5 { // firewall + rules 0–3
		t.Errorf("retry redid applied work: %+v", out.Steps)
	}
	lc.check(t)
}

func TestLimitsAndTimeouts(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	var many []edge.OVHRule
	for seq := range 21 {
		many = append(many, edge.OVHRule{Sequence: seq, Action: "permit", Protocol: "icmp"})
	}
	out, err := c.Apply(context.Background(), ip, many)
	lc.add(err)
	lc.add(out)
	if err == nil || !strings.Contains(err.Error(), "at most 20") || f.Mutations() != 0 {
		t.Errorf("21 rules: %v (changes: %d)", err, f.Mutations())
	}
	_, err = c.Apply(context.Background(), ip, []edge.OVHRule{{Sequence: 20, Action: "deny", Protocol: "ipv4"}})
	if err == nil || !strings.Contains(err.Error(), "outside 0–19") {
		t.Errorf("sequence 20: %v", err)
	}
	_, err = c.Apply(context.Background(), netip.MustParseAddr("2001:db8::1"), planRules(t))
	if err == nil || !strings.Contains(err.Error(), "not IPv4") {
		t.Errorf("IPv6: %v", err)
	}
	// A rule that never leaves creationPending: the wait is bounded.
	f.SetStuck(true)
	c2, _ := ovh.New(ovh.Credentials{Endpoint: f.Endpoint(), ApplicationKey: edgetest.OVHAppKey, ApplicationSecret: edgetest.OVHSecret, ConsumerKey: edgetest.OVHConsumer},
		ovh.Options{PollInterval: time.Millisecond, Wait: 50 * time.Millisecond})
	start := time.Now()
	out, err = c2.Apply(context.Background(), ip, planRules(t))
	lc.add(err)
	lc.add(out)
	if err == nil || !strings.Contains(err.Error(), `still "creationPending"`) || time.Since(start) > 5*time.Second {
		t.Errorf("stuck rule: %v after %s", err, time.Since(start))
	}
	lc.check(t)
}

// TestSignature: a wrong application secret is refused by the API's
// signature check, and the error names no credential.
func TestSignature(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	wrong := "AS-wrong-secret-" + edgetest.OVHSecret
	c := newClient(t, f, lc, wrong)
	out, err := c.Apply(context.Background(), ip, planRules(t))
	lc.add(err)
	lc.add(out)
	if err == nil || !strings.Contains(err.Error(), "Invalid signature") || len(f.BadSignatures()) == 0 {
		t.Fatalf("want a signature failure, got %v (server saw %v)", err, f.BadSignatures())
	}
	if strings.Contains(err.Error(), wrong) {
		t.Error("error shows the secret")
	}
	creds := ovh.Credentials{Endpoint: "ovh-eu", ApplicationKey: edgetest.OVHAppKey, ApplicationSecret: edgetest.OVHSecret, ConsumerKey: edgetest.OVHConsumer}
	lc.seen = append(lc.seen, fmt.Sprint(creds), fmt.Sprintf("%v %+v %#v %s", creds, creds, creds, creds))
	_, err = ovh.New(ovh.Credentials{Endpoint: "ovh-eu", ApplicationKey: edgetest.OVHAppKey, ApplicationSecret: edgetest.OVHSecret}, ovh.Options{})
	lc.add(err)
	if err == nil || !strings.Contains(err.Error(), "no consumer key") {
		t.Errorf("incomplete credentials: %v", err)
	}
	lc.check(t)
}

// TestRedactEcho: an API that echoes a credential in its error message
// does not get it into hardbake's error or outcome.
func TestRedactEcho(t *testing.T) {
	f := edgetest.NewOVH(t)
	f.EchoCredentials()
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	out, err := c.Apply(context.Background(), ip, planRules(t))
	lc.add(err)
	lc.add(out)
	if err == nil || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("want a redacted error, got %v", err)
	}
	lc.check(t)
}

func TestBackup(t *testing.T) {
	f := edgetest.NewOVH(t)
	lc := &leakCheck{}
	c := newClient(t, f, lc, edgetest.OVHSecret)
	ctx := context.Background()
	const svc = "vps-0a1b2c3d.vps.ovh.net"
	v := f.AddVPS(svc)
	pol := &edge.BackupPolicy{Provider: edge.BackupOVHVPS, Time: "02:30"}

	// No automated backup option: a clear failure, nothing ordered.
	out, err := c.Backup(ctx, svc, pol)
	lc.add(err)
	lc.add(out)
	if err == nil || !strings.Contains(err.Error(), "no automated backup option") || out.Complete {
		t.Errorf("unsubscribed: %v %+v", err, out)
	}
	v.SubscribeBackup("22:00:00")
	for i, want := range []string{edge.ResultDone, edge.ResultUnchanged} {
		out, err = c.Backup(ctx, svc, pol)
		lc.add(err)
		lc.add(out)
		if err != nil || !out.Complete || out.Steps[len(out.Steps)-1].Result != want {
			t.Errorf("run %d: %v %+v", i, err, out)
		}
	}
	if sched, n := v.Schedule(); sched != "02:30:00" || n != 1 {
		t.Errorf("schedule %s after %d reschedules", sched, n)
	}

	// Snapshot: an older one is replaced; a second call keeps ours.
	v.SetSnapshot("manual snapshot")
	out, err = c.Snapshot(ctx, svc, "i-1")
	lc.add(err)
	lc.add(out)
	if desc, ok, _ := v.Snapshot(); err != nil || !out.Complete || len(out.Steps) != 2 || !ok || desc != edge.SnapshotDescription("i-1") {
		t.Fatalf("snapshot: %v %+v", err, out)
	}
	out, err = c.Snapshot(ctx, svc, "i-1")
	if _, _, tasks := v.Snapshot(); err != nil || out.Steps[0].Result != edge.ResultUnchanged || tasks != 1 {
		t.Errorf("second snapshot: %v %+v (%d tasks)", err, out, tasks)
	}

	// A snapshot task of an interrupted attempt is waited for, not doubled.
	v.SetSnapshot("")
	v.StartSnapshotTask(edge.SnapshotDescription("i-2"), 3)
	out, err = c.Snapshot(ctx, svc, "i-2")
	lc.add(err)
	lc.add(out)
	if _, _, tasks := v.Snapshot(); err != nil || !out.Complete || tasks != 1 {
		t.Errorf("interrupted snapshot: %v %+v (%d tasks)", err, out, tasks)
	}
	if len(f.BadSignatures()) > 0 {
		t.Errorf("bad signatures: %v", f.BadSignatures())
	}
	lc.check(t)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
