//go:build cgo && libsqlite3

package service

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/apply"
	"hardbake.dev/hardbake/edge/edgetest"
	"hardbake.dev/hardbake/edge/hetzner"
	"hardbake.dev/hardbake/edge/ovh"
)

const testVPS = "vps-0a1b2c3d.vps.ovh.net"

// fakes are the provider APIs one test applies against.
type fakes struct {
	ovh *edgetest.OVH
	hz  *edgetest.Hetzner
	vps *edgetest.VPS
}

func newFakes(t *testing.T) *fakes {
	f := &fakes{ovh: edgetest.NewOVH(t), hz: edgetest.NewHetzner(t)}
	f.vps = f.ovh.AddVPS(testVPS)
	f.vps.SubscribeBackup("22:00:00")
	return f
}

// edgeConfig points the service at the fakes, with short polls.
func (f *fakes) edgeConfig() *EdgeConfig {
	return &EdgeConfig{
		Credentials: apply.Credentials{
			OVH: &ovh.Credentials{Endpoint: f.ovh.Endpoint(), ApplicationKey: edgetest.OVHAppKey,
				ApplicationSecret: edgetest.OVHSecret, ConsumerKey: edgetest.OVHConsumer},
			Hetzner: hetzner.Token(edgetest.HetznerToken), HetznerEndpoint: f.hz.Endpoint(),
		},
		Options: apply.Options{
			OVH:     ovh.Options{PollInterval: time.Millisecond, Wait: 5 * time.Second},
			Hetzner: hetzner.Options{PollInterval: time.Millisecond, Wait: 5 * time.Second},
		},
		Workers: 2, Queue: 8, ApplyTimeout: 30 * time.Second,
	}
}

var secrets = []string{edgetest.OVHAppKey, edgetest.OVHSecret, edgetest.OVHConsumer, edgetest.HetznerToken}

// leakCheck keeps every response body; check greps them, the service's
// log and /metrics for a credential.
type leakCheck struct {
	e      *env
	bodies []string
}

func (l *leakCheck) op(method, path string, body []byte) resp {
	l.e.t.Helper()
	r := l.e.op(method, path, body)
	l.bodies = append(l.bodies, string(r.body))
	return r
}

func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	m := l.e.op("GET", "/metrics", nil)
	want(t, m, http.StatusOK)
	if !strings.Contains(string(m.body), "hardbaked_edge_applies_total{") {
		t.Errorf("no edge metrics:\n%s", m.body)
	}
	all := map[string]string{"responses": strings.Join(l.bodies, "\n"), "log": l.e.logs.String(), "metrics": string(m.body)}
	for where, text := range all {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a credential (%.8s…) appears in the %s", s, where)
			}
		}
	}
	if !strings.Contains(all["log"], "edge applied") {
		t.Error("the log was not captured")
	}
}

// edgeProfile is baseline with an edge: and a backup: section, stored as
// "edged".
func edgeProfile(t *testing.T, e *env, providers string) {
	doc := strings.Replace(string(baselineDoc(t)), "name: baseline", "name: edged", 1) +
		"\nedge:\n  providers: [" + providers + "]\nbackup:\n  provider: ovh-vps\n  time: \"04:30\"\n"
	want(t, e.op("PUT", "/v1/profiles/edged", []byte(doc)), http.StatusCreated)
}

func edgeOrder(t *testing.T, cid, extra string) []byte {
	return []byte(strings.Replace(string(orderBody(t, cid, sshKey(t), extra)), `"profile": "baseline"`, `"profile": "edged"`, 1))
}

const fullTarget = `{"ip": "203.0.113.10", "hetzner_server_id": 4711, "ovh_vps": "` + testVPS + `"}`

// waitEdge polls the order until its edge state is one of states (bounded).
func (l *leakCheck) waitEdge(t *testing.T, id string, states ...string) OrderResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := l.op("GET", "/v1/orders/"+id, nil)
		want(t, r, http.StatusOK)
		var o OrderResponse
		r.json(t, &o)
		if o.Edge != nil && slices.Contains(states, o.Edge.State) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge of %s did not reach %v: %s", id, states, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func outcomeOf(t *testing.T, o OrderResponse, provider string) edge.Outcome {
	t.Helper()
	for _, p := range o.Edge.Last.Providers {
		if p.Provider == provider {
			return p
		}
	}
	t.Fatalf("no %s outcome in %+v", provider, o.Edge.Last)
	return edge.Outcome{}
}

// TestEdgeApply: an order created with its target is applied in the
// background at both providers (the SSH port the order's own), the VPS's
// automated backup is scheduled, and the report that makes it hardened
// takes the snapshot. Nothing a client or operator sees holds a credential.
func TestEdgeApply(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{limit: RateLimit{Burst: 1000, Every: time.Millisecond}, edge: f.edgeConfig(), logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh, hetzner")

	r := lc.op("POST", "/v1/orders", edgeOrder(t, "edge-apply-1", `, "edge_target": `+fullTarget))
	want(t, r, http.StatusCreated)
	var o OrderResponse
	r.json(t, &o)
	if o.Edge == nil || o.Edge.State != EdgePending || o.Edge.Target == nil || o.Edge.Target.IP != "203.0.113.10" ||
		!slices.Equal(o.Edge.Applies, []string{"ovh", "hetzner", "ovh-vps-backup", "ovh-vps-snapshot"}) {
		t.Fatalf("created: edge %+v", o.Edge)
	}
	got := lc.waitEdge(t, o.ID, EdgeApplied, EdgeFailed)
	if got.Edge.State != EdgeApplied {
		t.Fatalf("apply: %+v", got.Edge.Last)
	}
	rules, enabled := f.ovh.Rules("203.0.113.10")
	if !enabled || !slices.ContainsFunc(mapValues(rules), func(r edge.OVHRule) bool { return r.DestinationPort == o.SSHPort && r.Action == "permit" }) {
		t.Errorf("OVH holds no permit for the order's SSH port %d (enabled %v): %v", o.SSHPort, enabled, rules)
	}
	fws := f.hz.Firewalls(edge.FirewallName(o.InstanceID))
	if len(fws) != 1 || !slices.Equal(fws[0].Servers, []int64{4711}) ||
		!slices.ContainsFunc(fws[0].Rules, func(r edge.HetznerRule) bool { return r.Port == fmt.Sprint(o.SSHPort) }) {
		t.Errorf("Hetzner: %+v", fws)
	}
	if sched, _ := f.vps.Schedule(); sched != "04:30:00" {
		t.Errorf("backup schedule %q", sched)
	}
	if got.Edge.Last.Backup == nil || !got.Edge.Last.Backup.Complete || got.Edge.Last.Snapshot != nil {
		t.Errorf("backup %+v snapshot %+v", got.Edge.Last.Backup, got.Edge.Last.Snapshot)
	}
	if out := outcomeOf(t, got, "ovh"); !out.Complete || len(out.Steps) < 5 || out.Target != "203.0.113.10" {
		t.Errorf("ovh outcome %+v", out)
	}
	if _, ok, _ := f.vps.Snapshot(); ok {
		t.Fatal("a snapshot before the machine is hardened")
	}

	// The report: hardened, then the snapshot in the background.
	key, _ := hex.DecodeString(o.Report.Key)
	want(t, e.postReport(o.ID, key, reportBody(t, o, "hardened"), nextNonce(), e.clock.Now()), http.StatusOK)
	// A hardened order whose snapshot is still to come shows pending.
	got = lc.waitEdge(t, o.ID, EdgeApplied, EdgeFailed)
	if got.Edge.State != EdgeApplied || got.Edge.Last.Snapshot == nil || !got.Edge.Last.Snapshot.Complete {
		t.Fatalf("after hardened: %s %+v", got.Edge.State, got.Edge.Last)
	}
	if desc, ok, tasks := f.vps.Snapshot(); !ok || desc != edge.SnapshotDescription(o.InstanceID) || tasks != 1 {
		t.Errorf("snapshot %q %v after %d tasks", desc, ok, tasks)
	}
	lc.check(t)
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestEdgeHalfWay: OVH fails while creating the SSH rule and Hetzner's
// apply action fails; the order records what was applied at each; a retry
// (POST …/edge/apply) completes both without creating anything twice.
func TestEdgeHalfWay(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{edge: f.edgeConfig(), logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh, hetzner")
	f.ovh.FailRulePOST(4, 1) // sequence 4: the SSH rule
	f.hz.FailApply(1)

	o := e.createOrder(edgeOrder(t, "edge-half-1", `, "edge_target": `+fullTarget))
	got := lc.waitEdge(t, o.ID, EdgeApplied, EdgeFailed)
	if got.Edge.State != EdgeFailed {
		t.Fatalf("want failed, got %+v", got.Edge)
	}
	ov := outcomeOf(t, got, "ovh")
	var done, failed []string
	for _, s := range ov.Steps {
		switch s.Result {
		case edge.ResultDone:
			done = append(done, s.Object)
		case edge.ResultFailed:
			failed = append(failed, s.Object)
		}
	}
	if ov.Complete || ov.Error == "" || len(failed) != 1 || !strings.Contains(failed[0], fmt.Sprintf("port %d", o.SSHPort)) || len(done) != 5 {
		t.Errorf("ovh outcome does not say what was applied: done %q failed %q error %q", done, failed, ov.Error)
	}
	hz := outcomeOf(t, got, "hetzner")
	if hz.Complete || len(hz.Steps) != 2 || hz.Steps[0].Result != edge.ResultDone || hz.Steps[1].Result != edge.ResultFailed {
		t.Errorf("hetzner outcome %+v", hz)
	}
	if got.Edge.Last.Backup == nil || !got.Edge.Last.Backup.Complete {
		t.Errorf("the backup was held up by the firewalls: %+v", got.Edge.Last.Backup)
	}

	r := lc.op("POST", "/v1/orders/"+o.ID+"/edge/apply", nil)
	want(t, r, http.StatusAccepted)
	var queued OrderResponse
	r.json(t, &queued)
	if queued.Edge.State != EdgePending && queued.Edge.State != EdgeRunning {
		t.Errorf("retry answer: %s", queued.Edge.State)
	}
	got = lc.waitEdge(t, o.ID, EdgeApplied)
	rules, enabled := f.ovh.Rules("203.0.113.10")
	if !enabled || len(rules) == 0 {
		t.Fatalf("OVH after the retry: %v %v", rules, enabled)
	}
	for seq := range rules {
		if n := f.ovh.RuleCreates(seq); n != 1 {
			t.Errorf("OVH rule %d created %d times", seq, n)
		}
	}
	if n := f.hz.Creates(); n != 1 {
		t.Errorf("%d Hetzner firewalls created", n)
	}
	if fws := f.hz.Firewalls(edge.FirewallName(o.InstanceID)); len(fws) != 1 || !slices.Equal(fws[0].Servers, []int64{4711}) {
		t.Errorf("Hetzner after the retry: %+v", fws)
	}
	if ov := outcomeOf(t, got, "ovh"); !ov.Complete || ov.Error != "" {
		t.Errorf("ovh after the retry: %+v", ov)
	}
	lc.check(t)
}

// TestEdgeTargetLater: an order created without a target waits for one;
// PUT …/edge/target applies; the same PUT again re-applies, which changes
// nothing at the providers; a new IP moves the OVH rules to it.
func TestEdgeTargetLater(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{edge: f.edgeConfig(), logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh")
	o := e.createOrder(edgeOrder(t, "edge-later-1", ""))
	if o.Edge == nil || o.Edge.State != EdgeNoTarget || !slices.Equal(o.Edge.Applies, []string{"ovh", "ovh-vps-backup", "ovh-vps-snapshot"}) {
		t.Fatalf("created without target: %+v", o.Edge)
	}
	r := lc.op("PUT", "/v1/orders/"+o.ID+"/edge/target", []byte(`{"ip": "203.0.113.10", "ovh_vps": "`+testVPS+`"}`))
	want(t, r, http.StatusAccepted)
	lc.waitEdge(t, o.ID, EdgeApplied)
	before := f.ovh.Mutations()
	want(t, lc.op("PUT", "/v1/orders/"+o.ID+"/edge/target", []byte(`{"ip": "203.0.113.10", "ovh_vps": "`+testVPS+`"}`)), http.StatusAccepted)
	time.Sleep(50 * time.Millisecond)
	got := lc.waitEdge(t, o.ID, EdgeApplied)
	if n := f.ovh.Mutations() - before; n != 0 {
		t.Errorf("re-applying the same target made %d changes", n)
	}
	if ov := outcomeOf(t, got, "ovh"); slices.ContainsFunc(ov.Steps, func(s edge.Step) bool { return s.Result != edge.ResultUnchanged }) {
		t.Errorf("re-apply steps: %+v", ov.Steps)
	}
	// A hetzner server id alone: OVH (which needs the IP) fails, saying why.
	want(t, lc.op("PUT", "/v1/orders/"+o.ID+"/edge/target", []byte(`{"hetzner_server_id": 7}`)), http.StatusAccepted)
	got = lc.waitEdge(t, o.ID, EdgeFailed)
	if ov := outcomeOf(t, got, "ovh"); !strings.Contains(ov.Error, "no ip") || got.Edge.Last.Backup == nil || !strings.Contains(got.Edge.Last.Backup.Error, "no ovh_vps") {
		t.Errorf("target without ip: %+v", got.Edge.Last)
	}
	want(t, lc.op("PUT", "/v1/orders/"+o.ID+"/edge/target", []byte(`{"ip": "203.0.113.99", "ovh_vps": "`+testVPS+`"}`)), http.StatusAccepted)
	lc.waitEdge(t, o.ID, EdgeApplied)
	if rules, enabled := f.ovh.Rules("203.0.113.99"); !enabled || len(rules) == 0 {
		t.Errorf("new IP: %v %v", rules, enabled)
	}
	lc.check(t)
}

// TestEdgeStatusCodes: every answer of the new endpoints.
func TestEdgeStatusCodes(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{edge: f.edgeConfig(), noWorkers: true})
	e.edge.Queue = 1
	e.restart() // the queue size is read at New
	edgeProfile(t, e, "ovh")
	e.putBaseline()
	o := e.createOrder(edgeOrder(t, "edge-codes-1", ""))
	base := "/v1/orders/" + o.ID

	want(t, e.op("POST", base+"/edge/apply", nil), http.StatusConflict) // no target yet
	for _, c := range []struct {
		body   string
		status int
		path   string
	}{
		{`{"ip": "203.0.113.10"`, http.StatusBadRequest, ""},
		{`{"ip": "203.0.113.10", "region": "gra"}`, http.StatusBadRequest, "region"},
		{`{"ip": 5}`, http.StatusBadRequest, "ip"},
		{`{}`, http.StatusUnprocessableEntity, ""},
		{`{"ip": "2001:db8::1"}`, http.StatusUnprocessableEntity, "ip"},
		{`{"ip": "127.0.0.1"}`, http.StatusUnprocessableEntity, "ip"},
		{`{"hetzner_server_id": -1}`, http.StatusUnprocessableEntity, "hetzner_server_id"},
		{`{"ovh_vps": "../x"}`, http.StatusUnprocessableEntity, "ovh_vps"},
	} {
		r := e.op("PUT", base+"/edge/target", []byte(c.body))
		want(t, r, c.status)
		if eb := r.errBody(t); c.path != "" && (len(eb.Diagnostics) == 0 || eb.Diagnostics[0].Path != c.path || eb.Diagnostics[0].Line != 1) {
			t.Errorf("%s: diagnostics %+v", c.body, eb.Diagnostics)
		}
	}
	want(t, e.op("PUT", "/v1/orders/"+strings.Repeat("0", 32)+"/edge/target", []byte(`{"ip": "203.0.113.10"}`)), http.StatusNotFound)
	want(t, e.op("POST", "/v1/orders/"+strings.Repeat("0", 32)+"/edge/apply", nil), http.StatusNotFound)
	want(t, e.do("PUT", base+"/edge/target", "", []byte(`{"ip": "203.0.113.10"}`), nil), http.StatusUnauthorized)
	want(t, e.op("PUT", base+"/edge/target", []byte(`{"ip": "203.0.113.10", "ovh_vps": "`+strings.Repeat("v", maxTargetBody)+`"}`)), http.StatusRequestEntityTooLarge)

	// The workers are stopped: the first target fills the queue of one, the
	// order stays pending, a second order's target is stored but refused
	// with 503, and asking again for the first one is no second entry.
	r := e.op("PUT", base+"/edge/target", []byte(`{"ip": "203.0.113.10"}`))
	want(t, r, http.StatusAccepted)
	want(t, e.op("POST", base+"/edge/apply", nil), http.StatusAccepted)
	o2 := e.createOrder(edgeOrder(t, "edge-codes-2", ""))
	r = e.op("PUT", "/v1/orders/"+o2.ID+"/edge/target", []byte(`{"ip": "203.0.113.11"}`))
	want(t, r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	want(t, e.op("POST", "/v1/orders/"+o2.ID+"/edge/apply", nil), http.StatusServiceUnavailable)
	var stored OrderResponse
	e.op("GET", "/v1/orders/"+o2.ID, nil).json(t, &stored)
	if stored.Edge == nil || stored.Edge.Target == nil || stored.Edge.Target.IP != "203.0.113.11" || stored.Edge.State != EdgePending {
		t.Errorf("after a 503: %+v", stored.Edge)
	}
	// A full queue at creation: 201 all the same, with a warning.
	r = e.op("POST", "/v1/orders", edgeOrder(t, "edge-codes-3", `, "edge_target": {"ip": "203.0.113.12"}`))
	want(t, r, http.StatusCreated)
	if !strings.Contains(string(r.body), "edge apply queue is full") {
		t.Errorf("no queue warning: %s", r.body)
	}

	// A profile hardbaked applies nothing for: 200, state none; apply is 409.
	plain := e.createOrder(orderBody(t, "edge-codes-4", sshKey(t), `, "edge_target": {"ip": "203.0.113.13"}`))
	if plain.Edge == nil || plain.Edge.State != EdgeNone {
		t.Errorf("baseline order: %+v", plain.Edge)
	}
	want(t, e.op("PUT", "/v1/orders/"+plain.ID+"/edge/target", []byte(`{"ip": "203.0.113.14"}`)), http.StatusOK)
	want(t, e.op("POST", "/v1/orders/"+plain.ID+"/edge/apply", nil), http.StatusConflict)

	// An invalid target in the order request: 422 at its line.
	r = e.op("POST", "/v1/orders", edgeOrder(t, "edge-codes-5", `,
  "edge_target": {"ip": "300.1.1.1"}`))
	want(t, r, http.StatusUnprocessableEntity)
	if eb := r.errBody(t); len(eb.Diagnostics) != 1 || eb.Diagnostics[0].Path != "edge_target.ip" || eb.Diagnostics[0].Line != 7 {
		t.Errorf("diagnostics %+v", eb.Diagnostics)
	}
	// The same request with another target is another request: 409.
	want(t, e.op("POST", "/v1/orders", edgeOrder(t, "edge-codes-3", `, "edge_target": {"ip": "203.0.113.15"}`)), http.StatusConflict)

	// Cancelled: 410 for both; its queued apply will not run.
	r = e.op("DELETE", base, nil)
	want(t, r, http.StatusOK)
	var cancelled OrderResponse
	r.json(t, &cancelled)
	if cancelled.Edge == nil || cancelled.Edge.State != EdgeNone {
		t.Errorf("cancelled: %+v", cancelled.Edge)
	}
	want(t, e.op("PUT", base+"/edge/target", []byte(`{"ip": "203.0.113.10"}`)), http.StatusGone)
	want(t, e.op("POST", base+"/edge/apply", nil), http.StatusGone)
}

// TestEdgeWithoutCredentials: a service without credentials stores
// targets and applies nothing.
func TestEdgeWithoutCredentials(t *testing.T) {
	e := newEnv(t)
	edgeProfile(t, e, "ovh")
	o := e.createOrder(edgeOrder(t, "edge-none-1", `, "edge_target": {"ip": "203.0.113.10"}`))
	if o.Edge == nil || o.Edge.State != EdgeNone || len(o.Edge.Applies) != 0 || o.Edge.Target.IP != "203.0.113.10" {
		t.Fatalf("edge %+v", o.Edge)
	}
	want(t, e.op("PUT", "/v1/orders/"+o.ID+"/edge/target", []byte(`{"ip": "203.0.113.11"}`)), http.StatusOK)
	want(t, e.op("POST", "/v1/orders/"+o.ID+"/edge/apply", nil), http.StatusConflict)
	// The document is still rendered for the provider's own tooling.
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=ovh&ip=203.0.113.11", nil), http.StatusOK)
}

// TestEdgeNeverDelays: a provider that never settles does not hold up the
// HTTP answer; the apply ends at its timeout, recorded as failed.
func TestEdgeNeverDelays(t *testing.T) {
	f := newFakes(t)
	f.ovh.SetStuck(true)
	cfg := f.edgeConfig()
	cfg.Options.OVH.Wait = time.Minute
	cfg.ApplyTimeout = 4 * time.Second
	e := newEnvWith(t, &env{edge: cfg, logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh")
	start := time.Now()
	r := lc.op("POST", "/v1/orders", edgeOrder(t, "edge-slow-1", `, "edge_target": {"ip": "203.0.113.10", "ovh_vps": "`+testVPS+`"}`))
	want(t, r, http.StatusCreated)
	answered := time.Since(start)
	var o OrderResponse
	r.json(t, &o)
	// The answer came before the apply ended: it cannot end before its
	// timeout, since the provider never settles.
	if o.Edge == nil || (o.Edge.State != EdgePending && o.Edge.State != EdgeRunning) || answered >= cfg.ApplyTimeout {
		t.Errorf("answered after %s with edge %+v", answered, o.Edge)
	}
	got := lc.waitEdge(t, o.ID, EdgeFailed)
	ov := outcomeOf(t, got, "ovh")
	if !strings.Contains(ov.Error, "deadline") || got.Edge.Last.FinishedAt == nil || got.Edge.Last.FinishedAt.Sub(got.Edge.Last.StartedAt) < 0 {
		t.Errorf("timed-out apply: %+v", got.Edge.Last)
	}
	if !slices.ContainsFunc(ov.Steps, func(s edge.Step) bool { return s.Result == edge.ResultFailed && strings.HasPrefix(s.Object, "rule 0") }) {
		t.Errorf("the outcome does not say where it stopped: %+v", ov.Steps)
	}
	lc.check(t)
}

// TestEdgeRedactsEcho: a provider that echoes the credential headers into
// its error does not get them into the order, the log or the metrics.
func TestEdgeRedactsEcho(t *testing.T) {
	f := newFakes(t)
	f.ovh.EchoCredentials()
	e := newEnvWith(t, &env{edge: f.edgeConfig(), logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh")
	o := e.createOrder(edgeOrder(t, "edge-echo-1", `, "edge_target": `+fullTarget))
	got := lc.waitEdge(t, o.ID, EdgeFailed)
	if ov := outcomeOf(t, got, "ovh"); !strings.Contains(ov.Error, "[redacted]") {
		t.Errorf("want a redacted provider error, got %q", ov.Error)
	}
	lc.check(t)
}

// TestEdgeInterrupted: an apply that recorded its start and never its end
// (hardbaked stopped meanwhile) shows running until its timeout has
// passed, then interrupted; POST …/edge/apply queues it again.
func TestEdgeInterrupted(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{edge: f.edgeConfig(), noWorkers: true})
	edgeProfile(t, e, "ovh")
	o := e.createOrder(edgeOrder(t, "edge-int-1", `, "edge_target": {"ip": "203.0.113.10"}`))
	e.restart() // a new process: the queue is gone
	rec := fmt.Sprintf(`{"state": "running", "target": {"ip": "203.0.113.10"}, "started_at": %q}`, e.clock.Now().Format(time.RFC3339Nano))
	if err := e.store.SetEdgeOutcome(t.Context(), o.ID, []byte(rec)); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		var got OrderResponse
		e.op("GET", "/v1/orders/"+o.ID, nil).json(t, &got)
		return got.Edge.State
	}
	if s := state(); s != EdgeRunning {
		t.Fatalf("just started: %s", s)
	}
	e.clock.Add(e.edge.ApplyTimeout + 2*time.Minute)
	if s := state(); s != EdgeInterrupted {
		t.Fatalf("after the timeout: %s", s)
	}
	want(t, e.op("POST", "/v1/orders/"+o.ID+"/edge/apply", nil), http.StatusAccepted)
	if s := state(); s != EdgePending {
		t.Fatalf("queued again: %s", s)
	}
}

// TestEdgeResume: applies an earlier process queued or started and never
// finished are queued again when the service starts; finished ones and
// cancelled orders are left alone.
func TestEdgeResume(t *testing.T) {
	f := newFakes(t)
	e := newEnvWith(t, &env{edge: f.edgeConfig(), noWorkers: true, logs: &syncBuf{}})
	edgeProfile(t, e, "ovh")
	queued := e.createOrder(edgeOrder(t, "edge-resume-1", `, "edge_target": {"ip": "203.0.113.21", "ovh_vps": "`+testVPS+`"}`))
	running := e.createOrder(edgeOrder(t, "edge-resume-2", `, "edge_target": {"ip": "203.0.113.22", "ovh_vps": "`+testVPS+`"}`))
	done := e.createOrder(edgeOrder(t, "edge-resume-3", `, "edge_target": {"ip": "203.0.113.23", "ovh_vps": "`+testVPS+`"}`))
	gone := e.createOrder(edgeOrder(t, "edge-resume-4", `, "edge_target": {"ip": "203.0.113.24", "ovh_vps": "`+testVPS+`"}`))
	set := func(id, state, ip string) {
		rec := fmt.Sprintf(`{"state": %q, "target": {"ip": %q, "ovh_vps": %q}, "started_at": %q}`, state, ip, testVPS, e.clock.Now().Format(time.RFC3339Nano))
		if err := e.store.SetEdgeOutcome(t.Context(), id, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	set(running.ID, EdgeRunning, "203.0.113.22")
	set(done.ID, EdgeApplied, "203.0.113.23")
	want(t, e.op("DELETE", "/v1/orders/"+gone.ID, nil), http.StatusOK)

	e.noWorkers = false
	e.restart()
	lc := &leakCheck{e: e}
	lc.waitEdge(t, queued.ID, EdgeApplied)
	lc.waitEdge(t, running.ID, EdgeApplied)
	for _, ip := range []string{"203.0.113.21", "203.0.113.22"} {
		if _, enabled := f.ovh.Rules(ip); !enabled {
			t.Errorf("%s not applied after the restart", ip)
		}
	}
	for _, ip := range []string{"203.0.113.23", "203.0.113.24"} {
		if rules, _ := f.ovh.Rules(ip); rules != nil {
			t.Errorf("%s applied although finished or cancelled", ip)
		}
	}
	if !strings.Contains(e.logs.String(), "edge applies resumed") || !strings.Contains(e.logs.String(), "orders=2") {
		t.Errorf("log:\n%s", e.logs)
	}
}

// TestEdgeShutdown: stopping the service while an apply waits on a
// provider cuts it short and records it as interrupted; the next start
// resumes and completes it.
func TestEdgeShutdown(t *testing.T) {
	f := newFakes(t)
	f.ovh.SetStuck(true)
	cfg := f.edgeConfig()
	cfg.Options.OVH.Wait = time.Minute
	e := newEnvWith(t, &env{edge: cfg, logs: &syncBuf{}})
	lc := &leakCheck{e: e}
	edgeProfile(t, e, "ovh")
	o := e.createOrder(edgeOrder(t, "edge-stop-1", `, "edge_target": {"ip": "203.0.113.31", "ovh_vps": "`+testVPS+`"}`))
	lc.waitEdge(t, o.ID, EdgeRunning)
	start := time.Now()
	e.restart() // stops the workers (the apply is cut short), then starts again
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("stopping took %s", d)
	}
	f.ovh.SetStuck(false)
	got := lc.waitEdge(t, o.ID, EdgeApplied, EdgeFailed)
	if got.Edge.State != EdgeApplied {
		t.Fatalf("after the restart: %+v", got.Edge.Last)
	}
	if !strings.Contains(e.logs.String(), "state=interrupted") || !strings.Contains(e.logs.String(), "edge applies resumed") {
		t.Errorf("log:\n%s", e.logs)
	}
	lc.check(t)
}
