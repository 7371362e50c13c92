package edgetest

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbake.dev/hardbake/edge"
)

// The credentials the fake OVH API accepts; tests grep for them in
// everything hardbake shows.
const (
	OVHAppKey   = "AK-hb-test-application-key"
	OVHSecret   = "AS-hb-test-application-secret-0123456789"
	OVHConsumer = "CK-hb-test-consumer-key-abcdefghij"
)

// OVH implements the documented behaviour of the OVHcloud API endpoints
// hardbake uses: /auth/time; request signatures
// ("$1$" + sha1(secret+consumerKey+method+url+body+timestamp), joined by
// '+'); the Network Firewall of an IP (created, then enabled, each passing
// through a pending state), its rules (sequence 0–19, at most 20, created
// creationPending then ok, deleted removalPending then gone); VPS automated
// backup, snapshot and tasks.
type OVH struct {
	srv                      *httptest.Server
	appKey, secret, consumer string

	mu        sync.Mutex
	firewalls map[string]*ovhFW // by ipOnFirewall
	timeCalls int
	badSig    []string    // requests whose signature did not verify
	creates   map[int]int // successful POSTs per rule sequence
	mutations int         // POST, PUT, DELETE that changed state
	failPOST  map[int]int // rule sequence -> POSTs still to fail with 500
	stuck     bool        // rules never leave creationPending
	pending   int         // reads a pending object stays pending
	echo      bool        // answer every call with the caller's credential headers
	vps       map[string]*VPS
}

type ovhFW struct {
	enabled      bool
	pendingReads int
	rules        map[int]*ovhRule
}

type ovhRule struct {
	body         edge.OVHRule
	state        string
	pendingReads int
}

// VPS is one OVHcloud VPS of the fake: its automated backup option, its
// one snapshot slot and its tasks. Use its methods; they lock the fake.
type VPS struct {
	f             *OVH
	automated     *struct{ schedule, state string }
	snapshot      *string
	tasks         map[int64]*ovhTask
	nextTask      int64
	snapshotTasks int
	reschedules   int
}

type ovhTask struct {
	typ   string
	reads int // reads before done
	after func()
}

// NewOVH starts the fake on 127.0.0.1; it stops when the test ends.
func NewOVH(t testing.TB) *OVH {
	f := &OVH{appKey: OVHAppKey, secret: OVHSecret, consumer: OVHConsumer,
		firewalls: map[string]*ovhFW{}, creates: map[int]int{}, failPOST: map[int]int{}, pending: 2, vps: map[string]*VPS{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Endpoint is the API root to give go-ovh.
func (f *OVH) Endpoint() string { return f.srv.URL + "/1.0" }

// FailRulePOST makes the next n creations of the rule with sequence seq
// fail with a 500, before anything is stored.
func (f *OVH) FailRulePOST(seq, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failPOST[seq] = n
}

// SetStuck keeps new rules in creationPending for ever.
func (f *OVH) SetStuck(stuck bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stuck = stuck
}

// EchoCredentials makes every call fail, with a message that repeats the
// request's credential headers, as a misbehaving proxy might; signatures
// are no longer checked.
func (f *OVH) EchoCredentials() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.echo = true
}

// RuleCreates is how many times a rule with sequence seq was created.
func (f *OVH) RuleCreates(seq int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates[seq]
}

// Mutations counts the calls that changed state.
func (f *OVH) Mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutations
}

// TimeCalls counts GET /auth/time.
func (f *OVH) TimeCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timeCalls
}

// BadSignatures lists the requests whose signature did not verify.
func (f *OVH) BadSignatures() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.badSig...)
}

// Rules returns the rules held for ip by sequence, and whether its
// firewall is enabled; nil when ip has no firewall.
func (f *OVH) Rules(ip string) (map[int]edge.OVHRule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, ok := f.firewalls[ip]
	if !ok {
		return nil, false
	}
	out := map[int]edge.OVHRule{}
	for s, r := range fw.rules {
		out[s] = r.body
	}
	return out, fw.enabled
}

// AddVPS creates a VPS with no backup option and no snapshot.
func (f *OVH) AddVPS(name string) *VPS {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := &VPS{f: f, tasks: map[int64]*ovhTask{}}
	f.vps[name] = v
	return v
}

// SubscribeBackup gives the VPS the automated backup option, scheduled
// daily at schedule (HH:MM:SS).
func (v *VPS) SubscribeBackup(schedule string) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	v.automated = &struct{ schedule, state string }{schedule, "enabled"}
}

// Schedule is the automated backup's time ("" without the option) and how
// many times it was rescheduled.
func (v *VPS) Schedule() (string, int) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	if v.automated == nil {
		return "", v.reschedules
	}
	return v.automated.schedule, v.reschedules
}

// Snapshot is the description of the VPS's snapshot, if it has one, and
// how many snapshot tasks were started.
func (v *VPS) Snapshot() (desc string, ok bool, tasks int) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	if v.snapshot == nil {
		return "", false, v.snapshotTasks
	}
	return *v.snapshot, true, v.snapshotTasks
}

// SetSnapshot puts a snapshot (say, a manual one) in the slot; "" empties it.
func (v *VPS) SetSnapshot(desc string) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	if desc == "" {
		v.snapshot = nil
		return
	}
	v.snapshot = &desc
}

// StartSnapshotTask leaves a createSnapshot task running, as an earlier
// attempt interrupted half way would: after reads reads it is done and the
// snapshot has desc.
func (v *VPS) StartSnapshotTask(desc string, reads int) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	v.nextTask++
	v.tasks[v.nextTask] = &ovhTask{typ: "createSnapshot", reads: reads, after: func() { v.snapshot = &desc }}
}

type apiErr struct {
	code int
	msg  string
}

func (f *OVH) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	path, ok := strings.CutPrefix(r.URL.EscapedPath(), "/1.0")
	if !ok {
		reply(404, map[string]string{"message": "no such API version"})
		return
	}
	if path == "/auth/time" && r.Method == http.MethodGet {
		f.timeCalls++
		reply(200, time.Now().Unix())
		return
	}
	if f.echo {
		reply(400, map[string]string{"message": "bad request from " + r.Header.Get("X-Ovh-Application") + " / " + r.Header.Get("X-Ovh-Consumer")})
		return
	}
	if err := f.checkSignature(r, body); err != "" {
		f.badSig = append(f.badSig, r.Method+" "+path+": "+err)
		reply(403, map[string]string{"class": "Client::Forbidden", "message": "Invalid signature"})
		return
	}
	res, e := f.route(r.Method, path, r.URL.Query(), body)
	if e != nil {
		reply(e.code, map[string]string{"message": e.msg})
		return
	}
	reply(200, res)
}

// checkSignature verifies the headers go-ovh must send on every
// authenticated call.
func (f *OVH) checkSignature(r *http.Request, body []byte) string {
	if got := r.Header.Get("X-Ovh-Application"); got != f.appKey {
		return "wrong or missing X-Ovh-Application"
	}
	if got := r.Header.Get("X-Ovh-Consumer"); got != f.consumer {
		return "wrong or missing X-Ovh-Consumer"
	}
	tsText := r.Header.Get("X-Ovh-Timestamp")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 30*time.Second {
		return "missing or stale X-Ovh-Timestamp"
	}
	fullURL := "http://" + r.Host + r.URL.RequestURI()
	sum := sha1.Sum([]byte(f.secret + "+" + f.consumer + "+" + r.Method + "+" + fullURL + "+" + string(body) + "+" + tsText))
	if got, want := r.Header.Get("X-Ovh-Signature"), fmt.Sprintf("$1$%x", sum); got != want {
		return "bad X-Ovh-Signature"
	}
	return ""
}

func (f *OVH) route(method, path string, q url.Values, body []byte) (any, *apiErr) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := range parts {
		parts[i], _ = url.PathUnescape(parts[i])
	}
	switch {
	case len(parts) >= 3 && parts[0] == "ip" && parts[2] == "firewall":
		return f.routeFirewall(method, parts[1], parts[3:], body)
	case len(parts) >= 3 && parts[0] == "vps":
		return f.routeVPS(method, parts[1], parts[2:], q, body)
	}
	return nil, &apiErr{404, "no route " + path}
}

func (f *OVH) routeFirewall(method, block string, rest []string, body []byte) (any, *apiErr) {
	ip, _, _ := strings.Cut(block, "/")
	switch {
	case len(rest) == 0 && method == http.MethodGet:
		list := []string{}
		if _, ok := f.firewalls[ip]; ok {
			list = append(list, ip)
		}
		return list, nil
	case len(rest) == 0 && method == http.MethodPost:
		var req struct {
			IPOnFirewall string `json:"ipOnFirewall"`
		}
		if err := strictJSON(body, &req); err != nil || req.IPOnFirewall != ip {
			return nil, &apiErr{400, "bad ipOnFirewall"}
		}
		if _, ok := f.firewalls[ip]; ok {
			return nil, &apiErr{409, "firewall already exists"}
		}
		f.firewalls[ip] = &ovhFW{pendingReads: f.pending, rules: map[int]*ovhRule{}}
		f.mutations++
		return nil, nil
	}
	fw, ok := f.firewalls[rest[0]]
	if !ok || rest[0] != ip {
		return nil, &apiErr{404, "no firewall on " + rest[0]}
	}
	rest = rest[1:]
	switch {
	case len(rest) == 0 && method == http.MethodGet:
		state := "ok"
		if fw.pendingReads > 0 {
			fw.pendingReads--
			state = "pending"
		}
		return map[string]any{"ipOnFirewall": ip, "enabled": fw.enabled, "state": state}, nil
	case len(rest) == 0 && method == http.MethodPut:
		var req struct {
			Enabled bool `json:"enabled"`
		}
		if err := strictJSON(body, &req); err != nil {
			return nil, &apiErr{400, err.Error()}
		}
		fw.enabled, fw.pendingReads = req.Enabled, f.pending
		f.mutations++
		return nil, nil
	case len(rest) == 1 && rest[0] == "rule" && method == http.MethodGet:
		seqs := []int{}
		for s := range fw.rules {
			seqs = append(seqs, s)
		}
		sort.Ints(seqs)
		return seqs, nil
	case len(rest) == 1 && rest[0] == "rule" && method == http.MethodPost:
		var r edge.OVHRule
		if err := strictJSON(body, &r); err != nil {
			return nil, &apiErr{400, err.Error()}
		}
		if msg := validOVHRule(r); msg != "" {
			return nil, &apiErr{400, msg}
		}
		if f.failPOST[r.Sequence] > 0 {
			f.failPOST[r.Sequence]--
			return nil, &apiErr{500, "Internal server error"}
		}
		if _, ok := fw.rules[r.Sequence]; ok {
			return nil, &apiErr{409, fmt.Sprintf("a rule with sequence %d already exists", r.Sequence)}
		}
		if len(fw.rules) >= 20 {
			return nil, &apiErr{403, "the firewall already holds 20 rules"}
		}
		fw.rules[r.Sequence] = &ovhRule{body: r, state: "creationPending", pendingReads: f.pending}
		f.creates[r.Sequence]++
		f.mutations++
		return readForm(fw.rules[r.Sequence]), nil
	case len(rest) == 2 && rest[0] == "rule":
		seq, err := strconv.Atoi(rest[1])
		rule, ok := fw.rules[seq]
		if err != nil || !ok {
			return nil, &apiErr{404, "no rule " + rest[1]}
		}
		switch method {
		case http.MethodGet:
			if rule.pendingReads > 0 && !(f.stuck && rule.state == "creationPending") {
				rule.pendingReads--
			}
			if rule.pendingReads == 0 {
				if rule.state == "removalPending" {
					delete(fw.rules, seq)
					return nil, &apiErr{404, "no rule " + rest[1]}
				}
				rule.state = "ok"
			}
			return readForm(rule), nil
		case http.MethodDelete:
			if rule.state != "ok" {
				return nil, &apiErr{409, "rule is " + rule.state}
			}
			rule.state, rule.pendingReads = "removalPending", f.pending
			f.mutations++
			return nil, nil
		}
	}
	return nil, &apiErr{404, "no route"}
}

// validOVHRule applies the API's documented constraints on a new rule.
func validOVHRule(r edge.OVHRule) string {
	switch {
	case r.Sequence < 0 || r.Sequence > 19:
		return "sequence must be 0–19"
	case r.Action != "permit" && r.Action != "deny":
		return "bad action"
	case !strings.Contains(" ah esp gre icmp ipv4 tcp udp ", " "+r.Protocol+" "):
		return "bad protocol"
	case r.TCPOption != nil && r.Protocol != "tcp":
		return "tcpOption needs tcp"
	case r.TCPOption != nil && r.TCPOption.Option != "established" && r.TCPOption.Option != "syn":
		return "bad tcpOption"
	case (r.DestinationPort != 0 || r.SourcePort != 0) && r.Protocol != "tcp" && r.Protocol != "udp":
		return "ports need tcp or udp"
	}
	return ""
}

// readForm is a rule as GET returns it: ports as "eq N", tcpOption a
// string, source "any" when absent.
func readForm(r *ovhRule) map[string]any {
	b := r.body
	port := func(p int) any {
		if p == 0 {
			return nil
		}
		return fmt.Sprintf("eq %d", p)
	}
	src := "any"
	if b.Source != "" {
		src = b.Source
	}
	var opt, frag any
	if b.TCPOption != nil {
		opt, frag = b.TCPOption.Option, b.TCPOption.Fragments
	}
	return map[string]any{
		"sequence": b.Sequence, "action": b.Action, "protocol": b.Protocol, "source": src,
		"destinationPort": port(b.DestinationPort), "sourcePort": port(b.SourcePort),
		"tcpOption": opt, "fragments": frag, "state": r.state,
		"rule": fmt.Sprintf("%s %s %s", b.Action, b.Protocol, src), "creationDate": "2026-01-01T00:00:00+01:00",
	}
}

func (f *OVH) routeVPS(method, name string, rest []string, q url.Values, body []byte) (any, *apiErr) {
	v, ok := f.vps[name]
	if !ok {
		return nil, &apiErr{404, "no VPS " + name}
	}
	newTask := func(typ string, after func()) map[string]any {
		v.nextTask++
		v.tasks[v.nextTask] = &ovhTask{typ: typ, reads: f.pending, after: after}
		f.mutations++
		return map[string]any{"id": v.nextTask, "state": "todo", "type": typ}
	}
	switch p := strings.Join(rest, "/"); {
	case p == "automatedBackup" && method == http.MethodGet:
		if v.automated == nil {
			return nil, &apiErr{404, "The requested object (automatedBackup) does not exist"}
		}
		return map[string]any{"schedule": v.automated.schedule, "state": v.automated.state, "rotation": 7}, nil
	case p == "automatedBackup/reschedule" && method == http.MethodPost:
		var req edge.OVHReschedule
		if err := strictJSON(body, &req); err != nil || v.automated == nil {
			return nil, &apiErr{400, "cannot reschedule"}
		}
		v.automated.schedule = req.Schedule
		v.reschedules++
		f.mutations++
		return map[string]any{"id": 1, "state": "done", "type": "rescheduleAutoBackup"}, nil
	case p == "snapshot" && method == http.MethodGet:
		if v.snapshot == nil {
			return nil, &apiErr{404, "no snapshot"}
		}
		return map[string]any{"description": *v.snapshot, "creationDate": "2026-01-01T00:00:00+01:00"}, nil
	case p == "snapshot" && method == http.MethodDelete:
		if v.snapshot == nil {
			return nil, &apiErr{404, "no snapshot"}
		}
		return newTask("deleteSnapshot", func() { v.snapshot = nil }), nil
	case p == "createSnapshot" && method == http.MethodPost:
		var req edge.OVHSnapshotCreate
		if err := strictJSON(body, &req); err != nil {
			return nil, &apiErr{400, err.Error()}
		}
		if v.snapshot != nil {
			return nil, &apiErr{409, "a snapshot already exists"}
		}
		for _, t := range v.tasks {
			if t.typ == "createSnapshot" && t.reads > 0 {
				return nil, &apiErr{409, "a snapshot task is running"}
			}
		}
		v.snapshotTasks++
		d := req.Description
		return newTask("createSnapshot", func() { v.snapshot = &d }), nil
	case p == "tasks" && method == http.MethodGet:
		ids := []int64{}
		for id, t := range v.tasks {
			state := "done"
			if t.reads > 0 {
				state = "doing"
			}
			if t.typ == q.Get("type") && state == q.Get("state") {
				ids = append(ids, id)
			}
		}
		return ids, nil
	case len(rest) == 2 && rest[0] == "tasks" && method == http.MethodGet:
		id, _ := strconv.ParseInt(rest[1], 10, 64)
		t, ok := v.tasks[id]
		if !ok {
			return nil, &apiErr{404, "no task"}
		}
		if t.reads > 0 {
			t.reads--
			if t.reads == 0 {
				t.after()
				return map[string]any{"id": id, "state": "done", "type": t.typ}, nil
			}
			return map[string]any{"id": id, "state": "doing", "type": t.typ}, nil
		}
		return map[string]any{"id": id, "state": "done", "type": t.typ}, nil
	}
	return nil, &apiErr{404, "no route"}
}

func strictJSON(body []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
