//go:build cgo && libsqlite3

// Package clustertest runs real hardbaked processes as a three-node
// cluster on 127.0.0.1 and attacks it: SIGKILL of the leader under a
// bounded write load, a node with a foreign certificate, SIGTERM and
// removal. The binary is built once, without the race detector, so the
// failover times measured are those of the shipped program, not of a
// -race build.
package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/bake/baketest"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/store"
	"hardbake.dev/hardbake/templates"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hardbaked-cluster-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hardbaked")
	cmd := exec.Command("go", "build", "-tags", "libsqlite3", "-o", binary, "hardbake.dev/hardbake/cmd/hardbaked")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build hardbaked: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const apiToken = "cluster-test-token-0123456789abcdef"

// env is what every node of one test cluster shares: the cluster
// certificate, the API token, the service secret and the agents.
type env struct {
	t                            *testing.T
	dir                          string
	cert, key, tokenFile, secret string
	agentDir                     string
	socketTag                    string // unique per env in this process
	tls                          *store.ClusterTLS
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.socketTag = strings.NewReplacer("/", "-", "#", "-").Replace(t.Name()) + "-" + filepath.Base(e.dir)
	e.cert, e.key = makeCert(t, filepath.Join(e.dir, "cert"))
	e.tokenFile = filepath.Join(e.dir, "token")
	e.secret = filepath.Join(e.dir, "secret")
	e.agentDir = filepath.Join(e.dir, "agents")
	must(t, os.WriteFile(e.tokenFile, []byte(apiToken+"\n"), 0o600))
	must(t, os.WriteFile(e.secret, []byte(strings.Repeat("ab", 32)+"\n"), 0o600))
	must(t, os.Mkdir(e.agentDir, 0o755))
	must(t, os.WriteFile(filepath.Join(e.agentDir, render.SeedName("amd64")), baketest.StaticELF("amd64"), 0o755))
	var err error
	e.tls, err = store.LoadClusterTLS(e.cert, e.key)
	must(t, err)
	return e
}

// makeCert runs `hardbaked cert` into dir.
func makeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	out, err := exec.Command(binary, "cert", "--out", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("hardbaked cert: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cluster.crt"), filepath.Join(dir, "cluster.key")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

// node is one hardbaked process (or the place of one, between a kill and
// its restart).
type node struct {
	name, dataDir, listen, dqlite string
	args, environ                 []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr *syncBuffer
	log    strings.Builder // stderr of every earlier run, for failure messages
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) newNode(name string, extra ...string) *node {
	n := &node{name: name, dataDir: filepath.Join(e.dir, name), listen: freeAddr(e.t), dqlite: freeAddr(e.t)}
	// go-dqlite (v1.11.5) gives a node with TLS an abstract unix socket
	// named after its ID, and every bootstrap node has the same ID: two
	// TLS clusters in one network namespace (parallel test packages, other
	// test runs on this machine) collide on "@dqlite-<id>". The only knob
	// it reads is SNAP_INSTANCE_NAME, which prefixes that name; each test
	// environment gets its own.
	n.environ = append(os.Environ(), fmt.Sprintf("SNAP_INSTANCE_NAME=hardbaked-test-%d-%s", os.Getpid(), e.socketTag))
	n.args = append([]string{"serve", "--data-dir", n.dataDir, "--listen", n.listen, "--dqlite-address", n.dqlite,
		"--api-token-file", e.tokenFile, "--secret-file", e.secret, "--agent-dir", e.agentDir,
		"--cluster-cert", e.cert, "--cluster-key", e.key, "--shutdown-timeout", "10s"}, extra...)
	return n
}

func (n *node) url() string { return "http://" + n.listen }

// start runs the node's process with the same arguments every time, as a
// service manager would.
func (n *node) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stderr != nil {
		n.log.WriteString(n.stderr.String())
	}
	n.stderr = &syncBuffer{}
	n.cmd = exec.Command(binary, n.args...)
	n.cmd.Stderr = n.stderr
	n.cmd.Env = n.environ
	must(t, n.cmd.Start())
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() { err := cmd.Wait(); n.mu.Lock(); n.err = err; n.mu.Unlock(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

func (n *node) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.log.String()
	if n.stderr != nil {
		s += n.stderr.String()
	}
	return s
}

// waitHealthy waits until the node answers /healthz with 200 (it is in its
// cluster and reaches a leader).
func (n *node) waitHealthy(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			t.Fatalf("%s exited: %v\n%s", n.name, n.err, n.output())
		default:
		}
		if res, err := c.Get(n.url() + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not healthy within %s\n%s", n.name, within, n.output())
}

// kill sends sig and waits for the process to end.
func (n *node) kill(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	must(t, cmd.Process.Signal(sig))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of %s\n%s", n.name, sig, n.output())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *node) alive() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// cluster is three nodes started one after another: the first bootstraps,
// the others join it.
type cluster struct {
	e     *env
	nodes []*node
}

func (e *env) startCluster(t *testing.T, size int) *cluster {
	t.Helper()
	c := &cluster{e: e}
	first := e.newNode("n1", "--bootstrap")
	first.start(t)
	first.waitHealthy(t, 30*time.Second)
	c.nodes = append(c.nodes, first)
	for i := 2; i <= size; i++ {
		n := e.newNode(fmt.Sprintf("n%d", i), "--join", first.dqlite)
		n.start(t)
		n.waitHealthy(t, 30*time.Second)
		c.nodes = append(c.nodes, n)
	}
	// app.App promotes joined nodes to voters in the background: wait for
	// a full voting cluster before anything is killed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms, err := c.peers().Members(ctxT(t, 5*time.Second))
		voters := 0
		for _, m := range ms {
			if m.Role == "voter" {
				voters++
			}
		}
		if err == nil && voters == min(size, 3) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d voters within 30 s: %+v %v", min(size, 3), ms, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) peers() store.Peers {
	var addrs []string
	for _, n := range c.nodes {
		if n.alive() {
			addrs = append(addrs, n.dqlite)
		}
	}
	return store.Peers{Addresses: addrs, TLS: c.e.tls}
}

// leader returns the node the cluster reports as leader.
func (c *cluster) leader(t *testing.T) *node {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ms, err := c.peers().Members(ctxT(t, 3*time.Second))
		for _, m := range ms {
			if m.Leader {
				for _, n := range c.nodes {
					if n.dqlite == m.Address {
						return n
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader within 15 s: %+v %v", ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// api is an HTTP client of the operator API.
type api struct{ c *http.Client }

func newAPI(timeout time.Duration) *api {
	return &api{c: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

func (a *api) do(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func putProfile(t *testing.T, a *api, n *node) {
	t.Helper()
	doc, ok := templates.Profile("baseline")
	if !ok {
		t.Fatal("no baseline profile")
	}
	code, body, err := a.do(ctxT(t, 20*time.Second), "PUT", n.url()+"/v1/profiles/baseline", doc)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("PUT profile: %d %s %v", code, body, err)
	}
}

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkXv2Ge0sEeGtjV3Pr7DRdPYaBTQrSXwVx6cq3qnJSa ops"

func orderBody(cid string) []byte {
	host := strings.ReplaceAll(cid, "_", "-")
	return fmt.Appendf(nil, `{"client_order_id":%q,"profile":"baseline","hostname":%q,"ssh_keys":[%q]}`, cid, "h-"+host, sshKey)
}

type orderResp struct {
	ID            string `json:"id"`
	ClientOrderID string `json:"client_order_id"`
}

// createOrder posts one order; errTransient marks an outcome a client
// must retry (no answer, or a 5xx): the order may or may not exist.
var errTransient = errors.New("transient")

func (a *api) createOrder(ctx context.Context, n *node, cid string) (orderResp, error) {
	code, body, err := a.do(ctx, "POST", n.url()+"/v1/orders", orderBody(cid))
	if err != nil {
		return orderResp{}, fmt.Errorf("%w: %v", errTransient, err)
	}
	if code >= 500 {
		return orderResp{}, fmt.Errorf("%w: %d %s", errTransient, code, bytes.TrimSpace(body))
	}
	if code != http.StatusCreated && code != http.StatusOK {
		return orderResp{}, fmt.Errorf("POST order %s on %s: %d %s", cid, n.name, code, body)
	}
	var o orderResp
	if err := json.Unmarshal(body, &o); err != nil || o.ID == "" || o.ClientOrderID != cid {
		return orderResp{}, fmt.Errorf("POST order %s: bad answer %s (%v)", cid, body, err)
	}
	return o, nil
}

// getOrder reads one order; found is false on a 404, err set when the node
// gave no usable answer.
func (a *api) getOrder(ctx context.Context, n *node, id string) (found bool, err error) {
	code, body, err := a.do(ctx, "GET", n.url()+"/v1/orders/"+id, nil)
	switch {
	case err != nil:
		return false, err
	case code == http.StatusOK:
		return true, nil
	case code == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("GET order %s on %s: %d %s", id, n.name, code, body)
}

// listAll pages through every order on n and counts them by
// client_order_id.
func (a *api) listAll(t *testing.T, n *node) map[string][]string {
	t.Helper()
	byCID := map[string][]string{}
	cursor := ""
	for range 1000 {
		url := n.url() + "/v1/orders?limit=500"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		code, body, err := a.do(ctxT(t, 20*time.Second), "GET", url, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("list orders on %s: %d %s %v", n.name, code, body, err)
		}
		var page struct {
			Orders []orderResp `json:"orders"`
			Next   string      `json:"next_cursor"`
		}
		must(t, json.Unmarshal(body, &page))
		for _, o := range page.Orders {
			byCID[o.ClientOrderID] = append(byCID[o.ClientOrderID], o.ID)
		}
		if page.Next == "" {
			return byCID
		}
		cursor = page.Next
	}
	t.Fatalf("list orders on %s: more than 1000 pages", n.name)
	return nil
}

// machineLoad describes how busy the machine was, for failure messages of
// the timing checks.
func machineLoad() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("loadavg %s on %d CPUs", strings.TrimSpace(string(b)), runtime.NumCPU())
}
