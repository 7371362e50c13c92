//go:build cgo && libsqlite3

package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/bake/baketest"
	"hardbake.dev/hardbake/store"
	"hardbake.dev/hardbake/templates"
)

const testToken = "test-operator-token-0123456789abcdef"

// testClock is a clock tests can move.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one service on one real dqlite node.
type env struct {
	t       testing.TB
	dir     string
	addr    string
	store   *store.Store
	srv     *Server
	http    *httptest.Server
	clock   *testClock
	secrets *Secrets
	agents  *Agents
	limit   RateLimit
	// edge, when set, is the service's EdgeConfig; noWorkers keeps its
	// workers stopped (a queue that never drains).
	edge      *EdgeConfig
	noWorkers bool
	logs      *syncBuf // every log line of the service, when set
	stopEdge  func()
	seedWork  string // Config.SeedWorkDir
}

// syncBuf collects log lines written from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeAgents are minimal static ELF executables, which pass bake's agent
// check; the service only checks, hashes, embeds and serves their bytes.
func fakeAgents() *Agents {
	return NewAgents(map[string][]byte{"amd64": baketest.StaticELF("amd64"), "arm64": baketest.StaticELF("arm64")})
}

// nodeAddr is the dqlite address of the node in dir: a local socket, as
// hardbaked gives a single node (store.LocalAddress).
func nodeAddr(t testing.TB, dir string) string {
	addr, err := store.LocalAddress(dir + "/dqlite")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// newEnv starts a dqlite node in a fresh directory and the service on it.
// Its report rate limit is loose, so tests can post many refused reports;
// newEnvLimit sets one.
func newEnv(t *testing.T) *env {
	return newEnvLimit(t, RateLimit{Burst: 1000, Every: time.Millisecond})
}

func newEnvLimit(t *testing.T, limit RateLimit) *env {
	t.Helper()
	return newEnvWith(t, &env{limit: limit})
}

// newEnvWith starts the service with e's limit, edge and logs settings.
func newEnvWith(t *testing.T, e *env) *env {
	t.Helper()
	e.t, e.dir, e.clock, e.agents = t, t.TempDir(), &testClock{t: time.Now().UTC()}, fakeAgents()
	e.addr = nodeAddr(t, e.dir)
	var err error
	if e.secrets, err = LoadOrCreateSecret(e.dir + "/secret"); err != nil {
		t.Fatal(err)
	}
	e.open(e.addr)
	t.Cleanup(e.close)
	return e
}

func (e *env) open(addr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{Dir: e.dir + "/dqlite", Address: addr})
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.store = st
	e.http = httptest.NewUnstartedServer(nil)
	var logger *slog.Logger
	if e.logs != nil {
		logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(Config{
		Store: DQLite{S: st}, Secrets: e.secrets, APIToken: []byte(testToken),
		PublicURL: "http://" + e.http.Listener.Addr().String(), ReportDeadline: 30 * time.Minute,
		Agents: e.agents, Now: e.clock.Now, ReportLimit: e.limit, Edge: e.edge, Logger: logger,
		SeedWorkDir: e.seedWork,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.stopEdge = func() {}
	if !e.noWorkers {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); srv.RunEdgeWorkers(ctx) }()
		e.stopEdge = func() { cancel(); <-done }
	}
	e.http.Config.Handler = srv.Handler()
	e.http.Start()
}

func (e *env) close() {
	if e.store == nil {
		return
	}
	e.http.Close()
	e.stopEdge() // no apply may reach a closed store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.Close(ctx); err != nil {
		e.t.Errorf("close store: %v", err)
	}
	e.store = nil
}

// restart stops the service and its node, then opens the same directory.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open("")
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r resp) errBody(t testing.TB) errorBody {
	t.Helper()
	var eb errorBody
	r.json(t, &eb)
	return eb
}

// do sends a request; token "" sends none.
func (e *env) do(method, path, token string, body []byte, hdr http.Header) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, data}
}

func (e *env) op(method, path string, body []byte) resp {
	e.t.Helper()
	return e.do(method, path, testToken, body, nil)
}

func want(t testing.TB, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

func baselineDoc(t testing.TB) []byte {
	data, ok := templates.Profile("baseline")
	if !ok {
		t.Fatal("no built-in baseline profile")
	}
	return data
}

// putBaseline stores the built-in baseline profile as "baseline".
func (e *env) putBaseline() {
	e.t.Helper()
	want(e.t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(e.t)), http.StatusCreated)
}

func sshKey(t testing.TB) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " ops@example.com"
}

func orderBody(t testing.TB, cid, key string, extra string) []byte {
	return []byte(fmt.Sprintf(`{
  "client_order_id": %q,
  "profile": "baseline",
  "hostname": "web-1.example.com",
  "ssh_keys": [%q],
  "allow": ["443/tcp"]%s
}`, cid, key, extra))
}

func (e *env) createOrder(body []byte) OrderResponse {
	e.t.Helper()
	r := e.op("POST", "/v1/orders", body)
	want(e.t, r, http.StatusCreated)
	var o OrderResponse
	r.json(e.t, &o)
	return o
}

// report builds a report body for the order the way the agent would.
func reportBody(t testing.TB, o OrderResponse, result string) []byte {
	data, err := json.Marshal(map[string]any{
		"plan_version": 1, "plan_digest": o.PlanDigest, "profile": o.Profile, "instance_id": o.InstanceID,
		"agent_version": "test", "stage": "late", "result": result, "steps": []any{},
		"ssh":       map[string]any{"activation": "service", "port": o.SSHPort},
		"firewall":  map[string]any{"backend": "nftables"},
		"fail2ban":  map[string]any{"state": "ok"},
		"updates":   map[string]any{},
		"host_keys": []map[string]string{{"type": "ssh-ed25519", "fingerprint": "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var nonceSeq struct {
	sync.Mutex
	n int
}

func nextNonce() string {
	nonceSeq.Lock()
	defer nonceSeq.Unlock()
	nonceSeq.n++
	return fmt.Sprintf("nonce-%016d", nonceSeq.n)
}

// postReport signs body with key for id at the env's clock and posts it.
func (e *env) postReport(id string, key []byte, body []byte, nonce string, at time.Time) resp {
	e.t.Helper()
	sr, err := SignReport(key, id, at, nonce, body)
	if err != nil {
		e.t.Fatal(err)
	}
	h := sr.Header()
	h.Set("Content-Type", "application/json")
	return e.do("POST", "/report/"+id, "", sr.Body, h)
}

// send is an operator request whose body the caller reads.
func (e *env) send(method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	return e.http.Client().Do(req)
}
