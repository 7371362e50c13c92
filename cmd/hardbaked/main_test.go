//go:build cgo && libsqlite3

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/bake/baketest"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/store"
	"hardbake.dev/hardbake/templates"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hardbaked-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hardbaked")
	out, err := exec.Command("go", "build", "-race", "-tags", "libsqlite3", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build hardbaked: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const token = "process-test-token-0123456789abcdef"

func freePort(t *testing.T) string {
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct free addresses on 127.0.0.1. The listeners
// stay open until all are picked: a port just closed can come back at once,
// and a process given the same port twice fails to start.
func freePorts(t *testing.T, n int) []string {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// setup makes a token file and an agent dir; it returns their paths.
func setup(t *testing.T) (tokenFile, agentDir string) {
	dir := t.TempDir()
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentDir = filepath.Join(dir, "agents")
	if err := os.Mkdir(agentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(agentDir, render.SeedName("amd64")), baketest.StaticELF("amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	return tokenFile, agentDir
}

// syncBuffer collects a process's stderr while it runs.
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

type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	url    string
	done   chan error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) waitHealthy(t *testing.T, listen string) {
	t.Helper()
	p.url = "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("hardbaked exited: %v\n%s", err, p.stderr)
		default:
		}
		res, err := http.Get(p.url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("hardbaked not healthy within 30 s\n%s", p.stderr)
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGTERM\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "hardbaked stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.stderr)
	}
}

func call(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// TestServeStopRestart: a real hardbaked process takes orders, stops
// cleanly on SIGTERM, and a new process on the same data directory has
// every acknowledged order; no token reaches the log. A single node given
// no --dqlite-address runs on a local unix socket; one given a TCP
// address (as every data directory before local sockets was created)
// keeps it across the restart.
func TestServeStopRestart(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		name := map[bool]string{false: "local-socket", true: "tcp"}[tcp]
		t.Run(name, func(t *testing.T) { testServeStopRestart(t, tcp) })
	}
}

func testServeStopRestart(t *testing.T, tcp bool) {
	tokenFile, agentDir := setup(t)
	data := filepath.Join(t.TempDir(), "state")
	ports := freePorts(t, 3) // API, dqlite, the restarted API
	listen := ports[0]
	args := []string{"serve", "--data-dir", data, "--listen", listen, "--api-token-file", tokenFile, "--agent-dir", agentDir}
	wantAddr, err := store.LocalAddress(filepath.Join(data, "dqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if tcp {
		wantAddr = ports[1]
		args = append(args, "--dqlite-address", wantAddr)
	}
	p := start(t, args...)
	p.waitHealthy(t, listen)
	checkNodeAddress(t, data, wantAddr)

	doc, _ := templates.Profile("baseline")
	if code, body := call(t, "PUT", p.url+"/v1/profiles/baseline", doc); code != http.StatusCreated {
		t.Fatalf("PUT profile: %d %s", code, body)
	}
	type order struct {
		ID      string
		Status  string
		NoCloud struct{ URL string }
	}
	var acked []order
	for i := range 10 {
		body := fmt.Sprintf(`{"client_order_id":"p-%d","profile":"baseline","hostname":"web-%d","ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkXv2Ge0sEeGtjV3Pr7DRdPYaBTQrSXwVx6cq3qnJSa ops"]}`, i, i)
		code, resp := call(t, "POST", p.url+"/v1/orders", []byte(body))
		if code != http.StatusCreated {
			t.Fatalf("order %d: %d %s", i, code, resp)
		}
		var o order
		if err := json.Unmarshal(resp, &o); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, o)
	}
	res, err := http.Get(acked[0].NoCloud.URL + "user-data")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("NoCloud fetch: %v %v", err, res)
	}
	res.Body.Close()
	p.stop(t)

	log := p.stderr.String()
	tok := strings.TrimSuffix(acked[0].NoCloud.URL[strings.Index(acked[0].NoCloud.URL, "/nocloud/")+len("/nocloud/"):], "/")
	if strings.Contains(log, tok) || strings.Contains(log, token) {
		t.Fatalf("a token reached the log:\n%s", log)
	}
	if !strings.Contains(log, "/nocloud/REDACTED/user-data") {
		t.Fatalf("the NoCloud request is not logged redacted:\n%s", log)
	}
	for path, mode := range map[string]os.FileMode{data: 0o700, filepath.Join(data, "secret"): 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, mode)
		}
	}

	// Restart on the same directory (the node remembers its address).
	listen = ports[2]
	p2 := start(t, "serve", "--data-dir", data, "--listen", listen, "--api-token-file", tokenFile, "--agent-dir", agentDir)
	p2.waitHealthy(t, listen)
	for i, o := range acked {
		code, resp := call(t, "GET", p2.url+"/v1/orders/"+o.ID, nil)
		if code != http.StatusOK {
			t.Fatalf("order %d lost after restart: %d %s", i, code, resp)
		}
		var got order
		if err := json.Unmarshal(resp, &got); err != nil {
			t.Fatal(err)
		}
		want := "created"
		if i == 0 {
			want = "fetched"
		}
		if got.Status != want {
			t.Fatalf("order %d: status %s, want %s", i, got.Status, want)
		}
		// The same secret: the NoCloud token still opens the order (the
		// URL names the new listen address, the token is the same).
		if !strings.HasSuffix(got.NoCloud.URL, o.NoCloud.URL[strings.Index(o.NoCloud.URL, "/nocloud/"):]) {
			t.Fatalf("order %d: NoCloud URL changed from %s to %s", i, o.NoCloud.URL, got.NoCloud.URL)
		}
	}
	p2.stop(t)
	checkNodeAddress(t, data, wantAddr)
}

// checkNodeAddress checks the dqlite address recorded in the data
// directory (go-dqlite's info.yaml).
func checkNodeAddress(t *testing.T, data, want string) {
	t.Helper()
	info, err := os.ReadFile(filepath.Join(data, "dqlite", "info.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var node struct {
		Address string `yaml:"Address"`
	}
	if err := yaml.Unmarshal(info, &node); err != nil || node.Address != want {
		t.Fatalf("info.yaml records another address than %s (%v):\n%s", want, err, info)
	}
}

func TestServeUsage(t *testing.T) {
	tokenFile, agentDir := setup(t)
	loose := filepath.Join(t.TempDir(), "loose-token")
	if err := os.WriteFile(loose, []byte(token), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short-token")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	openDir := t.TempDir()
	if err := os.Chmod(openDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := func(extra ...string) []string {
		return append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--api-token-file", tokenFile, "--agent-dir", agentDir, "--listen", "127.0.0.1:1"}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"serv"}, "unknown command"},
		{"no data dir", []string{"serve", "--api-token-file", tokenFile}, "--data-dir is required"},
		{"no token", []string{"serve", "--data-dir", t.TempDir()}, "--api-token-file is required"},
		{"loose token", good("--api-token-file", loose), "chmod 600"},
		{"short token", good("--api-token-file", short), "at least 16"},
		{"missing token", good("--api-token-file", "/nonexistent/token"), "--api-token-file"},
		{"open data dir", good("--data-dir", openDir), "make it 0700"},
		{"data dir is a file", good("--data-dir", file), "not a directory"},
		{"any address", good("--listen", "0.0.0.0:8080"), "--public-url is required"},
		{"bad public url", good("--public-url", "ftp://x"), "--public-url"},
		{"short deadline", good("--report-deadline", "10s"), "--report-deadline"},
		{"bad flag", good("--colour"), "unknown flag"},
		{"extra arg", good("now"), "unexpected argument"},
		{"bad log format", good("--log-format", "xml"), "--log-format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary, c.args...)
			var stderr, stdout bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, &stdout
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != exitUsage {
				t.Fatalf("exit %v, want %d\n%s", err, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), c.want) {
				t.Fatalf("output lacks %q:\n%s%s", c.want, stdout.String(), stderr.String())
			}
		})
	}
	// Nothing was created for the refused runs.
	if entries, _ := os.ReadDir(openDir); len(entries) != 0 {
		t.Fatalf("refused run wrote into %s", openDir)
	}
}

// TestSystemdUnit checks examples/hardbaked.service with systemd-analyze
// verify (pointed at the binary under test, since verify wants ExecStart
// to exist), and that it keeps the sandboxing the README promises.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../examples/hardbaked.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"DynamicUser=yes", "StateDirectory=hardbaked", "StateDirectoryMode=0700", "ProtectSystem=strict",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "LoadCredential=api-token:", "--data-dir ${STATE_DIRECTORY}"} {
		if !bytes.Contains(unit, []byte(d)) {
			t.Errorf("unit lacks %q", d)
		}
	}
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatal("systemd-analyze not found and HARDBAKE_REQUIRE_TOOLS=1")
		}
		t.Skip("systemd-analyze not found")
	}
	p := filepath.Join(t.TempDir(), "hardbaked.service")
	if err := os.WriteFile(p, bytes.ReplaceAll(unit, []byte("/usr/local/lib/hardbake/hardbaked"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestBadAgentDir: an agent dir without a usable agent stops the start
// (exit 1) before the database is touched.
func TestBadAgentDir(t *testing.T) {
	tokenFile, _ := setup(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, render.SeedName("amd64")), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "state")
	for _, agentDir := range []string{dir, t.TempDir()} {
		cmd := exec.Command(binary, "serve", "--data-dir", data, "--api-token-file", tokenFile, "--agent-dir", agentDir, "--listen", freePort(t))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure {
			t.Fatalf("exit %v, want %d\n%s", err, exitFailure, out)
		}
		if !strings.Contains(string(out), "agent") {
			t.Fatalf("message does not name the agent:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(data, "dqlite")); err == nil {
			t.Fatal("the database was created before the agent check")
		}
	}
}
