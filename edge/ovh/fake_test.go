package ovh_test

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

// fakeOVH implements the documented behaviour of the OVHcloud API endpoints
// hardbake uses, on 127.0.0.1: /auth/time; request signatures
// ("$1$" + sha1(secret+consumerKey+method+url+body+timestamp), joined by
// '+'); the Network Firewall of an IP (created, then enabled, each passing
// through a pending state), its rules (sequence 0–19, at most 20, created
// creationPending then ok, deleted removalPending then gone); VPS automated
// backup, snapshot and tasks.
type fakeOVH struct {
	t                        *testing.T
	srv                      *httptest.Server
	appKey, secret, consumer string

	mu        sync.Mutex
	firewalls map[string]*fakeFW // by ipOnFirewall
	timeCalls int
	badSig    []string    // requests whose signature did not verify
	creates   map[int]int // successful POSTs per rule sequence
	mutations int         // POST, PUT, DELETE that changed state
	failPOST  map[int]int // rule sequence -> POSTs still to fail with 500
	stuck     bool        // rules never leave creationPending
	pending   int         // reads a pending object stays pending

	vps map[string]*fakeVPS
}

type fakeFW struct {
	enabled      bool
	pendingReads int
	rules        map[int]*fakeRule
}

type fakeRule struct {
	body         edge.OVHRule
	state        string
	pendingReads int
}

type fakeVPS struct {
	automated     *struct{ schedule, state string }
	snapshot      *string
	tasks         map[int64]*fakeTask
	nextTask      int64
	snapshotTasks int
	reschedules   int
}

type fakeTask struct {
	typ   string
	reads int // reads before done
	after func()
}

const (
	testAppKey   = "AK-hb-test-application-key"
	testSecret   = "AS-hb-test-application-secret-0123456789"
	testConsumer = "CK-hb-test-consumer-key-abcdefghij"
)

func newFakeOVH(t *testing.T) *fakeOVH {
	f := &fakeOVH{t: t, appKey: testAppKey, secret: testSecret, consumer: testConsumer,
		firewalls: map[string]*fakeFW{}, creates: map[int]int{}, failPOST: map[int]int{}, pending: 2, vps: map[string]*fakeVPS{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve)) // listens on 127.0.0.1
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOVH) endpoint() string { return f.srv.URL + "/1.0" }

type apiErr struct {
	code int
	msg  string
}

func (f *fakeOVH) serve(w http.ResponseWriter, r *http.Request) {
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
	if res == nil {
		reply(200, nil)
		return
	}
	reply(200, res)
}

// checkSignature verifies the headers go-ovh must send on every
// authenticated call.
func (f *fakeOVH) checkSignature(r *http.Request, body []byte) string {
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

func (f *fakeOVH) route(method, path string, q url.Values, body []byte) (any, *apiErr) {
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

func (f *fakeOVH) routeFirewall(method, block string, rest []string, body []byte) (any, *apiErr) {
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
		f.firewalls[ip] = &fakeFW{pendingReads: f.pending, rules: map[int]*fakeRule{}}
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
		if msg := validRule(r); msg != "" {
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
		fw.rules[r.Sequence] = &fakeRule{body: r, state: "creationPending", pendingReads: f.pending}
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

// validRule applies the API's documented constraints on a new rule.
func validRule(r edge.OVHRule) string {
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
func readForm(r *fakeRule) map[string]any {
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

func (f *fakeOVH) routeVPS(method, name string, rest []string, q url.Values, body []byte) (any, *apiErr) {
	v, ok := f.vps[name]
	if !ok {
		return nil, &apiErr{404, "no VPS " + name}
	}
	newTask := func(typ string, after func()) map[string]any {
		v.nextTask++
		v.tasks[v.nextTask] = &fakeTask{typ: typ, reads: f.pending, after: after}
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

// state returns the rules held for ip, by sequence.
func (f *fakeOVH) state(ip string) (map[int]edge.OVHRule, bool) {
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

// echoHandler answers every call with an error that repeats the request's
// credential headers, as a misbehaving proxy might.
func echoHandler(f *fakeOVH) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/auth/time") {
			_ = json.NewEncoder(w).Encode(time.Now().Unix())
			return
		}
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "bad request from " + r.Header.Get("X-Ovh-Application") + " / " + r.Header.Get("X-Ovh-Consumer")})
	})
}
