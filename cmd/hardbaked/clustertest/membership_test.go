//go:build cgo && libsqlite3

package clustertest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/store"
)

// hardbaked runs the binary to completion and returns its exit code and
// output.
func hardbaked(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t, timeout), binary, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("hardbaked %v: %v\n%s", args, err, out)
	return 0, ""
}

func (c *cluster) listCLI(t *testing.T) []store.Member {
	t.Helper()
	code, out := hardbaked(t, 20*time.Second, "cluster", "list", "--json", "--peers", strings.Join(c.peers().Addresses, ","),
		"--cluster-cert", c.e.cert, "--cluster-key", c.e.key)
	if code != 0 {
		t.Fatalf("hardbaked cluster list: exit %d\n%s", code, out)
	}
	var ms []store.Member
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("cluster list --json: %v\n%s", err, out)
	}
	return ms
}

// TestClusterMembership: the cluster's membership commands, the
// certificate as the only way in, the trap of a forgotten --join, and a
// clean leave (SIGTERM hands over, `cluster remove` from a node that
// stays).
func TestClusterMembership(t *testing.T) {
	e := newEnv(t)
	c := e.startCluster(t, 3)
	a := newAPI(10 * time.Second)
	putProfile(t, a, c.nodes[2])

	ms := c.listCLI(t)
	leaders := 0
	for _, m := range ms {
		if m.Leader {
			leaders++
		}
		if m.Role != "voter" {
			t.Errorf("member %+v: want a voter", m)
		}
	}
	if len(ms) != 3 || leaders != 1 {
		t.Fatalf("cluster list: %+v", ms)
	}
	code, out := hardbaked(t, 20*time.Second, "cluster", "list", "--peers", c.nodes[1].dqlite, "--cluster-cert", e.cert, "--cluster-key", e.key)
	if code != 0 || !strings.Contains(out, "ADDRESS") || strings.Count(out, "voter") != 3 || strings.Count(out, "*") != 1 {
		t.Errorf("cluster list table: exit %d\n%s", code, out)
	}

	t.Run("foreign certificate", func(t *testing.T) {
		otherCert, otherKey := makeCert(t, filepath.Join(t.TempDir(), "other"))
		intruder := e.newNode("intruder", "--join", c.nodes[0].dqlite)
		intruder.args = replaceArg(intruder.args, "--cluster-cert", otherCert)
		intruder.args = replaceArg(intruder.args, "--cluster-key", otherKey)
		start := time.Now()
		code, out := hardbaked(t, 60*time.Second, intruder.args...)
		if code != 1 || !strings.Contains(out, "cluster certificate") {
			t.Errorf("join with another cluster's certificate: exit %d, want 1 naming the certificate\n%s", code, out)
		}
		t.Logf("refused after %s: %s", time.Since(start).Round(time.Millisecond), lastLine(out))
		if ms := c.listCLI(t); len(ms) != 3 {
			t.Errorf("membership changed: %+v", ms)
		}

		other, err := store.LoadClusterTLS(otherCert, otherKey)
		must(t, err)
		addrs := []string{c.nodes[0].dqlite, c.nodes[1].dqlite, c.nodes[2].dqlite}
		// A client that does not check the server at all still has to
		// show the cluster's certificate: the nodes must refuse it.
		careless := &store.ClusterTLS{Listen: other.Listen, Dial: other.Dial.Clone()}
		careless.Dial.InsecureSkipVerify = true
		for name, p := range map[string]store.Peers{
			"other certificate":                   {Addresses: addrs, TLS: other},
			"other certificate, server unchecked": {Addresses: addrs, TLS: careless},
			"plain TCP":                           {Addresses: addrs},
		} {
			if _, err := p.Members(ctxT(t, 3*time.Second)); err == nil {
				t.Errorf("%s: cluster members answered", name)
			}
			if r, err := p.OpenRaw(ctxT(t, 3*time.Second)); err == nil {
				r.Close()
				t.Errorf("%s: SQL on the cluster's database accepted", name)
			}
		}
		code, out = hardbaked(t, 20*time.Second, "cluster", "list", "--timeout", "3s", "--peers", c.nodes[0].dqlite, "--cluster-cert", otherCert, "--cluster-key", otherKey)
		if code != 1 {
			t.Errorf("cluster list with another certificate: exit %d\n%s", code, out)
		}
		// The control: the cluster's own certificate gets in.
		r, err := c.peers().OpenRaw(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatalf("raw client with the cluster certificate: %v", err)
		}
		must(t, r.Insert(ctxT(t, 10*time.Second), []byte("x")))
		r.Close()
	})

	t.Run("forgotten join", func(t *testing.T) {
		n := e.newNode("forgetful") // cluster certificate, empty dir, no --join, no --bootstrap
		code, out := hardbaked(t, 20*time.Second, n.args...)
		if code != 2 || !strings.Contains(out, "--join") || !strings.Contains(out, "--bootstrap") {
			t.Errorf("empty dir without --join: exit %d, want 2 naming --join and --bootstrap\n%s", code, out)
		}
		if _, err := os.Stat(n.dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused start left %s behind (%v)", n.dataDir, err)
		}
		plain := e.newNode("plain", "--join", c.nodes[0].dqlite)
		plain.args = dropArg(dropArg(plain.args, "--cluster-cert"), "--cluster-key")
		if code, out := hardbaked(t, 20*time.Second, plain.args...); code != 2 || !strings.Contains(out, "--cluster-cert") {
			t.Errorf("--join without a certificate: exit %d\n%s", code, out)
		}
		both := e.newNode("both", "--join", c.nodes[0].dqlite, "--bootstrap")
		if code, out := hardbaked(t, 20*time.Second, both.args...); code != 2 {
			t.Errorf("--join with --bootstrap: exit %d\n%s", code, out)
		}
	})

	t.Run("leave and remove", func(t *testing.T) {
		leader := c.leader(t)
		code, out := hardbaked(t, 20*time.Second, "cluster", "remove", "--peers", leader.dqlite, "--cluster-cert", e.cert, "--cluster-key", e.key, leader.dqlite)
		if code != 1 || !strings.Contains(out, "leader") {
			t.Errorf("removing the leader: exit %d, want 1\n%s", code, out)
		}
		t0 := time.Now()
		if err := leader.kill(t, syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, leader.output())
		}
		stopped := time.Since(t0)
		if !strings.Contains(leader.output(), "hardbaked stopped") || strings.Contains(leader.output(), "hand over:") {
			t.Errorf("no clean stop:\n%s", leader.output())
		}
		next := c.leader(t)
		led := newLedger()
		if _, _, ok := led.create(ctxT(t, 20*time.Second), a, c, 0, "after-sigterm"); !ok {
			t.Fatalf("no write after the leader left: %v", led.problems)
		}
		t.Logf("SIGTERM of leader %s: exited 0 after %s; %s leads; a write acknowledged %s after the signal",
			leader.name, stopped.Round(time.Millisecond), next.name, time.Since(t0).Round(time.Millisecond))

		code, out = hardbaked(t, 20*time.Second, "cluster", "remove", "--peers", next.dqlite, "--cluster-cert", e.cert, "--cluster-key", e.key, leader.dqlite)
		if code != 0 {
			t.Fatalf("cluster remove %s: exit %d\n%s", leader.dqlite, code, out)
		}
		ms := c.listCLI(t)
		if len(ms) != 2 {
			t.Fatalf("after remove: %+v", ms)
		}
		for _, m := range ms {
			if m.Address == leader.dqlite {
				t.Errorf("removed node still listed: %+v", ms)
			}
		}
		if _, _, ok := led.create(ctxT(t, 20*time.Second), a, c, 1, "after-remove"); !ok {
			t.Fatalf("no write after the removal: %v", led.problems)
		}
		code, out = hardbaked(t, 20*time.Second, "cluster", "remove", "--peers", next.dqlite, "--cluster-cert", e.cert, "--cluster-key", e.key, leader.dqlite)
		if code != 1 || !strings.Contains(out, "not a member") {
			t.Errorf("removing it again: exit %d\n%s", code, out)
		}
	})
}

func replaceArg(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag && i+1 < len(out) {
			out[i+1] = value
		}
	}
	return out
}

func dropArg(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// TestHTTPSAPI: --tls-cert/--tls-key serve the API over TLS only. (The
// cluster certificate stands in for a web certificate here; a provider
// uses one for its API host name.)
func TestHTTPSAPI(t *testing.T) {
	e := newEnv(t)
	n := e.newNode("tls", "--bootstrap", "--tls-cert", e.cert, "--tls-key", e.key)
	n.start(t)
	pem, err := os.ReadFile(e.cert)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hardbaked"}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := c.Get("https://" + n.listen + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) || !n.alive() {
			t.Fatalf("no HTTPS healthz: %v\n%s", err, n.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := http.Get("http://" + n.listen + "/healthz")
	if err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the TLS listener")
		}
	}
	if err := n.kill(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, n.output())
	}
}
