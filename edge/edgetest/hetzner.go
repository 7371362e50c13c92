package edgetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"hardbake.dev/hardbake/edge"
)

// HetznerToken is the API token the fake Hetzner API accepts.
const HetznerToken = "hcloud-test-token-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"

// Hetzner implements the Hetzner Cloud API endpoints hardbake uses:
// bearer-token auth; firewalls listed by name, created (names unique),
// their rules replaced by the set_rules action and applied to servers by
// apply_to_resources, each action running for a few reads before it
// succeeds (or fails, when told to), its effect visible only then.
type Hetzner struct {
	srv   *httptest.Server
	token string

	mu        sync.Mutex
	firewalls map[int64]*hzFW
	actions   map[int64]*hzAction
	nextID    int64
	creates   int
	mutations int
	failApply int // apply actions still to end in error
	authFails int
}

type hzFW struct {
	ID        int64              `json:"id"`
	Name      string             `json:"name"`
	Labels    map[string]string  `json:"labels"`
	Created   string             `json:"created"`
	Rules     []edge.HetznerRule `json:"rules"`
	AppliedTo []map[string]any   `json:"applied_to"`
	servers   map[int64]bool
}

type hzAction struct {
	ID       int64             `json:"id"`
	Command  string            `json:"command"`
	Status   string            `json:"status"`
	Progress int               `json:"progress"`
	Started  string            `json:"started"`
	Finished *string           `json:"finished"`
	Res      []map[string]any  `json:"resources"`
	Error    map[string]string `json:"error"`
	reads    int
	fail     bool
	effect   func()
}

// NewHetzner starts the fake on 127.0.0.1; it stops when the test ends.
func NewHetzner(t testing.TB) *Hetzner {
	f := &Hetzner{token: HetznerToken, firewalls: map[int64]*hzFW{}, actions: map[int64]*hzAction{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Endpoint is the API root to give hcloud-go.
func (f *Hetzner) Endpoint() string { return f.srv.URL + "/v1" }

// FailApply makes the next n apply_to_resources actions end in error.
func (f *Hetzner) FailApply(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failApply = n
}

// Creates counts the firewalls created.
func (f *Hetzner) Creates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates
}

// Mutations counts the calls that changed state.
func (f *Hetzner) Mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutations
}

// AuthFails counts the calls refused for a wrong token.
func (f *Hetzner) AuthFails() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authFails
}

// HetznerFirewall is a firewall as the fake holds it.
type HetznerFirewall struct {
	Rules   []edge.HetznerRule
	Servers []int64 // the servers it is applied to, sorted
}

// Firewalls returns every firewall called name (a correct client leaves
// at most one).
func (f *Hetzner) Firewalls(name string) []HetznerFirewall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []HetznerFirewall
	ids := make([]int64, 0, len(f.firewalls))
	for id := range f.firewalls {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		fw := f.firewalls[id]
		if fw.Name != name {
			continue
		}
		h := HetznerFirewall{Rules: append([]edge.HetznerRule(nil), fw.Rules...)}
		for s := range fw.servers {
			h.Servers = append(h.Servers, s)
		}
		sort.Slice(h.Servers, func(i, j int) bool { return h.Servers[i] < h.Servers[j] })
		out = append(out, h)
	}
	return out
}

func (f *Hetzner) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, ecode, msg string) {
		reply(code, map[string]any{"error": map[string]any{"code": ecode, "message": msg, "details": map[string]any{}}})
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.authFails++
		fail(401, "unauthorized", "unable to authenticate")
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	meta := func(n int) map[string]any {
		return map[string]any{"pagination": map[string]any{"page": 1, "per_page": 50, "previous_page": nil, "next_page": nil, "last_page": 1, "total_entries": n}}
	}
	switch {
	case path == "/firewalls" && r.Method == http.MethodGet:
		list := []*hzFW{}
		for _, fw := range f.firewalls {
			if name := r.URL.Query().Get("name"); name == "" || fw.Name == name {
				list = append(list, fw)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		reply(200, map[string]any{"firewalls": list, "meta": meta(len(list))})
	case path == "/firewalls" && r.Method == http.MethodPost:
		var req struct {
			Name    string             `json:"name"`
			Labels  map[string]string  `json:"labels"`
			Rules   []edge.HetznerRule `json:"rules"`
			ApplyTo []any              `json:"apply_to"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Name == "" {
			fail(400, "invalid_input", "bad request")
			return
		}
		if msg := validHetznerRules(req.Rules); msg != "" {
			fail(400, "invalid_input", msg)
			return
		}
		for _, fw := range f.firewalls {
			if fw.Name == req.Name {
				fail(409, "uniqueness_error", "name is already used")
				return
			}
		}
		f.nextID++
		fw := &hzFW{ID: f.nextID, Name: req.Name, Labels: req.Labels, Created: "2026-01-01T00:00:00Z", Rules: req.Rules, AppliedTo: []map[string]any{}, servers: map[int64]bool{}}
		f.firewalls[fw.ID] = fw
		f.creates++
		f.mutations++
		reply(201, map[string]any{"firewall": fw, "actions": []*hzAction{f.action("set_firewall_rules", fw.ID, false, func() {})}})
	case len(parts) == 4 && parts[0] == "firewalls" && parts[2] == "actions" && r.Method == http.MethodPost:
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		fw, ok := f.firewalls[id]
		if !ok {
			fail(404, "not_found", "firewall not found")
			return
		}
		switch parts[3] {
		case "set_rules":
			var req struct {
				Rules []edge.HetznerRule `json:"rules"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				fail(400, "invalid_input", err.Error())
				return
			}
			if msg := validHetznerRules(req.Rules); msg != "" {
				fail(400, "invalid_input", msg)
				return
			}
			f.mutations++
			reply(201, map[string]any{"actions": []*hzAction{f.action("set_firewall_rules", id, false, func() { fw.Rules = req.Rules })}})
		case "apply_to_resources":
			var req struct {
				ApplyTo []struct {
					Type   string `json:"type"`
					Server struct {
						ID int64 `json:"id"`
					} `json:"server"`
				} `json:"apply_to"`
			}
			if err := json.Unmarshal(body, &req); err != nil || len(req.ApplyTo) != 1 || req.ApplyTo[0].Type != "server" {
				fail(400, "invalid_input", "bad apply_to")
				return
			}
			sid := req.ApplyTo[0].Server.ID
			if fw.servers[sid] {
				fail(422, "firewall_already_applied", "firewall already applied to the server")
				return
			}
			failIt := f.failApply > 0
			if failIt {
				f.failApply--
			}
			f.mutations++
			reply(201, map[string]any{"actions": []*hzAction{f.action("apply_firewall", id, failIt, func() {
				fw.servers[sid] = true
				fw.AppliedTo = append(fw.AppliedTo, map[string]any{"type": "server", "server": map[string]any{"id": sid}})
			})}})
		default:
			fail(404, "not_found", "no such action")
		}
	case path == "/actions" && r.Method == http.MethodGet:
		list := []*hzAction{}
		for _, s := range r.URL.Query()["id"] {
			id, _ := strconv.ParseInt(s, 10, 64)
			if a, ok := f.actions[id]; ok {
				f.advance(a)
				list = append(list, a)
			}
		}
		reply(200, map[string]any{"actions": list, "meta": meta(len(list))})
	default:
		fail(404, "not_found", "no route "+r.Method+" "+path)
	}
}

func (f *Hetzner) action(cmd string, fwID int64, fail bool, effect func()) *hzAction {
	f.nextID++
	a := &hzAction{ID: f.nextID, Command: cmd, Status: "running", Started: "2026-01-01T00:00:00Z",
		Res: []map[string]any{{"id": fwID, "type": "firewall"}}, reads: 2, fail: fail, effect: effect}
	f.actions[a.ID] = a
	return a
}

// advance moves a running action one read closer to its end.
func (f *Hetzner) advance(a *hzAction) {
	if a.Status != "running" {
		return
	}
	if a.reads--; a.reads > 0 {
		a.Progress = 50
		return
	}
	done := "2026-01-01T00:00:05Z"
	a.Finished, a.Progress = &done, 100
	if a.fail {
		a.Status = "error"
		a.Error = map[string]string{"code": "action_failed", "message": "Action failed"}
		return
	}
	a.Status = "success"
	a.effect()
}

// validHetznerRules applies the API's documented constraints on rules.
func validHetznerRules(rules []edge.HetznerRule) string {
	for i, r := range rules {
		switch {
		case r.Direction != "in" && r.Direction != "out":
			return fmt.Sprintf("rule %d: bad direction", i)
		case r.Protocol != "tcp" && r.Protocol != "udp" && r.Protocol != "icmp" && r.Protocol != "esp" && r.Protocol != "gre":
			return fmt.Sprintf("rule %d: bad protocol", i)
		case (r.Protocol == "tcp" || r.Protocol == "udp") && r.Port == "":
			return fmt.Sprintf("rule %d: port required for %s", i, r.Protocol)
		case r.Protocol != "tcp" && r.Protocol != "udp" && r.Port != "":
			return fmt.Sprintf("rule %d: port not allowed for %s", i, r.Protocol)
		case r.Direction == "in" && len(r.SourceIPs) == 0:
			return fmt.Sprintf("rule %d: source_ips required", i)
		}
		for _, s := range r.SourceIPs {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Sprintf("rule %d: bad source %q", i, s)
			}
		}
	}
	return ""
}
