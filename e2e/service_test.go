//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// The order service in the suite: a scenario with NoCloudNet boots with no
// seed disk, from a hardbaked (bin/hardbaked, one dqlite node) that the
// test starts on 127.0.0.1 and the guest reaches at serviceGuestAddr
// through a guestfwd relay, like the mirror.

// serviceGuestAddr is where the guest reaches hardbaked (guestfwd).
const serviceGuestAddr = mirrorGuestAddr + ":8080"

// hardbaked is one running service.
type hardbaked struct {
	Addr  string // 127.0.0.1:PORT
	token string
	cmd   *exec.Cmd
	done  chan struct{}
	lg    *logger
	name  string
}

// startHardbaked runs bin/hardbaked serve with its data in dir; its agents
// are bin/'s (make build puts them beside it).
func startHardbaked(ctx context.Context, root, dir string, lg *logger, name string) (*hardbaked, error) {
	bin := filepath.Join(root, "bin", "hardbaked")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run `make build` first: %w", bin, err)
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	tokFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokFile, []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	h := &hardbaked{Addr: fmt.Sprintf("127.0.0.1:%d", port), token: hex.EncodeToString(token), done: make(chan struct{}), lg: lg, name: name}
	logf, err := os.Create(filepath.Join(dir, "hardbaked.log"))
	if err != nil {
		return nil, err
	}
	h.cmd = exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "hardbaked-data"), "--listen", h.Addr,
		"--api-token-file", tokFile, "--public-url", "http://"+serviceGuestAddr,
		"--agent-dir", filepath.Join(root, "bin"), "--report-deadline", "40m")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start hardbaked: %w", err)
	}
	go func() { _ = h.cmd.Wait(); logf.Close(); close(h.done) }()
	lg.Printf("%s: hardbaked pid %d on %s (guests: %s)", name, h.cmd.Process.Pid, h.Addr, serviceGuestAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + h.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		select {
		case <-h.done:
			return nil, fmt.Errorf("hardbaked exited at start (see %s)", filepath.Join(dir, "hardbaked.log"))
		case <-ctx.Done():
			h.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.Stop()
			return nil, fmt.Errorf("hardbaked not healthy within 30s: %v", err)
		}
	}
}

// Stop sends SIGTERM to its own pid and waits (SIGKILL after 20 s).
func (h *hardbaked) Stop() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.lg.Printf("%s: hardbaked pid %d stopped", h.name, h.cmd.Process.Pid)
}

// call makes an operator request and decodes a JSON answer into out.
func (h *hardbaked) call(method, path, contentType string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, "http://"+h.Addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, data, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return resp.StatusCode, nil
}

// userData is an order's user-data as the service serves it to the
// operator (the NoCloud-Net scenarios have no seed to read the plan from).
func (h *hardbaked) userData(id string) ([]byte, error) {
	req, err := http.NewRequest("GET", "http://"+h.Addr+"/v1/orders/"+id+"/user-data", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET user-data: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET user-data: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET user-data: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	return data, nil
}

// svcOrder is the part of hardbaked's order the suite reads.
type svcOrder struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	InstanceID string `json:"instance_id"`
	SSHPort    int    `json:"ssh_port"`
	PlanDigest string `json:"plan_digest"`
	Agent      struct {
		Kind string `json:"kind"`
		URL  string `json:"url"`
	} `json:"agent"`
	FetchedAt  *time.Time `json:"fetched_at"`
	ReportedAt *time.Time `json:"reported_at"`
	NoCloud    *struct {
		URL       string `json:"url"`
		KernelArg string `json:"kernel_arg"`
	} `json:"nocloud"`
	Report *struct {
		URL string `json:"url"`
		Key string `json:"key"`
	} `json:"report"`
	HostKeys []struct {
		Type        string `json:"type"`
		Fingerprint string `json:"fingerprint"`
	} `json:"host_keys"`
}

// putProfile stores the scenario's profile (with the local mirror) under
// its name, which orders then name.
func (h *hardbaked) putProfile(sc scenario, m *mirror) error {
	name, doc, err := scenarioProfile(sc, m)
	if err != nil {
		return err
	}
	_, err = h.call("PUT", "/v1/profiles/"+name, "application/yaml", doc, nil)
	return err
}

// profileName is the name the scenario's profile is stored under.
func profileName(sc scenario) string {
	if sc.Profile == "" {
		return "e2e"
	}
	return sc.Profile
}

// postOrder creates the order for a scenario, the same fields as
// orderYAML; the agent comes from the service (agent: url).
func (h *hardbaked) postOrder(sc scenario, key *sshKey, suffix string) (*svcOrder, error) {
	req := map[string]any{
		"client_order_id": "e2e-" + sc.Name + suffix, "profile": profileName(sc), "agent": "url",
		"hostname": "e2e-" + sc.Name + suffix, "instance_id": "i-e2e-" + sc.Name + suffix,
		"admin_user": "admin", "ssh_keys": []string{key.Authorized}, "allow": []string{fmt.Sprintf("%d/tcp", portOrder)},
	}
	if sc.SSHPort != 0 {
		req["ssh_port"] = sc.SSHPort
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var o svcOrder
	if _, err := h.call("POST", "/v1/orders", "application/json", body, &o); err != nil {
		return nil, err
	}
	if o.NoCloud == nil || o.Report == nil {
		return nil, fmt.Errorf("order %s has no NoCloud or report URL", o.ID)
	}
	return &o, nil
}

func (h *hardbaked) order(id string) (*svcOrder, error) {
	var o svcOrder
	_, err := h.call("GET", "/v1/orders/"+id, "", nil, &o)
	return &o, err
}

// forgedReport posts a well-formed report for o, claiming hardened, signed
// with key (not o's): the service must refuse it (403) and change nothing.
func (h *hardbaked) forgedReport(o *svcOrder, key []byte) (int, string, error) {
	body := fmt.Sprintf(`{"plan_version":1,"plan_digest":%q,"profile":"e2e","instance_id":%q,"agent_version":"forged","stage":"late","result":"hardened","steps":[],"host_keys":[{"type":"ssh-ed25519","fingerprint":"SHA256:forgedforgedforgedforgedforgedforgedforged00"}]}`,
		o.PlanDigest, o.InstanceID)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return 0, "", err
	}
	n := hex.EncodeToString(nonce)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("hardbake-report-v1\n" + o.ID + "\n" + ts + "\n" + n + "\n" + body))
	req, err := http.NewRequest("POST", "http://"+h.Addr+"/report/"+o.ID, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Hardbake-Timestamp", ts)
	req.Header.Set("Hardbake-Nonce", n)
	req.Header.Set("Hardbake-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(data)), nil
}

// relayGet sends a GET through the suite's guestfwd relay, the path a
// guest's request takes (QEMU runs the same binary per guest connection),
// with the Host header the guest sends.
func relayGet(ctx context.Context, relay, target, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relay, target)
	// stdin stays open until the answer is read, as a guest's connection
	// does: a half-closed request counts as a client gone for the server.
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("relay: %w", err)
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	if _, err := io.WriteString(in, "GET "+path+" HTTP/1.1\r\nHost: "+serviceGuestAddr+"\r\nUser-Agent: Cloud-Init/22.4.2\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, nil, fmt.Errorf("relay: write: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(out), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("relay answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// serviceSetup is a NoCloudNet scenario's service side before the boot.
type serviceSetup struct {
	h     *hardbaked
	order *svcOrder
}

// prepareService starts hardbaked, PUTs the profile, POSTs the
// scenario's order, and proves before the boot that a forged report is
// refused and that a cancelled order's NoCloud-Net URL serves nothing.
func (g *guest) prepareService(ctx context.Context, m *mirror) (*serviceSetup, bool) {
	res := g.res
	h, err := startHardbaked(ctx, g.s.root, g.dir, g.s.lg, g.sc.Name)
	if !res.check("hardbaked started on 127.0.0.1", err) {
		return nil, false
	}
	g.t.Cleanup(h.Stop)
	if !res.check("PUT /v1/profiles/"+profileName(g.sc)+" (the scenario's profile)", h.putProfile(g.sc, m)) {
		return nil, false
	}
	o, err := h.postOrder(g.sc, g.key, "")
	if !res.check("POST /v1/orders (agent: url)", err) {
		return nil, false
	}
	g.s.lg.Printf("%s: order %s, ssh port %d, %s", g.sc.Name, o.ID, o.SSHPort, strings.Replace(o.NoCloud.KernelArg, o.NoCloud.URL, "http://"+serviceGuestAddr+"/nocloud/REDACTED/", 1))

	// A second order, cancelled: its machine must get nothing.
	other, err := h.postOrder(g.sc, g.key, "-cancelled")
	if res.check("POST a second order", err) {
		var c svcOrder
		_, err := h.call("DELETE", "/v1/orders/"+other.ID, "", nil, &c)
		if err == nil && c.Status != "cancelled" {
			err = fmt.Errorf("status %q after DELETE", c.Status)
		}
		res.check("DELETE cancels the second order", err)
		tok := strings.TrimPrefix(other.NoCloud.URL, "http://"+serviceGuestAddr)
		var bad []string
		for _, f := range []string{"meta-data", "user-data", "vendor-data"} {
			code, body, err := relayGet(ctx, g.s.relay, h.Addr, tok+f)
			if err != nil || code != http.StatusGone || bytes.Contains(body, []byte("cloud-config")) || bytes.Contains(body, []byte("instance-id")) {
				bad = append(bad, fmt.Sprintf("%s: HTTP %d %q %v", f, code, body, err))
			}
		}
		res.check("cancelled order: its NoCloud-Net files answer 410 and nothing else (through the guest's relay)", boolErr(len(bad) == 0, strings.Join(bad, "; ")))
		// Control: a live order's files come through the same path (a
		// third order, so the guest's own order stays unfetched until it
		// boots).
		ctl, err := h.postOrder(g.sc, g.key, "-control")
		if err == nil {
			var code int
			var body []byte
			code, body, err = relayGet(ctx, g.s.relay, h.Addr, strings.TrimPrefix(ctl.NoCloud.URL, "http://"+serviceGuestAddr)+"meta-data")
			if err == nil && (code != http.StatusOK || !bytes.Contains(body, []byte(ctl.InstanceID))) {
				err = fmt.Errorf("HTTP %d %q", code, body)
			}
		}
		res.check("control: a live order's meta-data is served through the same relay", err)

		// Forged reports: a random key, and the other order's key.
		for _, f := range []struct{ name, key string }{{"random key", ""}, {"the cancelled order's key", other.Report.Key}} {
			key := make([]byte, 32)
			if f.key != "" {
				key, _ = hex.DecodeString(f.key)
			} else if _, err := rand.Read(key); err != nil {
				g.t.Fatal(err)
			}
			code, answer, err := h.forgedReport(o, key)
			if err == nil && code != http.StatusForbidden {
				err = fmt.Errorf("HTTP %d: %s", code, answer)
			}
			res.check("forged report ("+f.name+") refused with 403", err)
		}
		after, err := h.order(o.ID)
		if err == nil && (after.Status != "created" || after.ReportedAt != nil || len(after.HostKeys) > 0) {
			err = fmt.Errorf("order changed: status %s, reported_at %v, host keys %v", after.Status, after.ReportedAt, after.HostKeys)
		}
		res.check("forged reports changed nothing (order still created)", err)
	}
	return &serviceSetup{h: h, order: o}, true
}

// checkReportHome waits for the guest's report to reach the service and
// checks the order: hardened, fetched, with the host key SSH saw.
func (g *guest) checkReportHome(ctx context.Context, ss *serviceSetup, hostKey ssh.PublicKey) {
	var o *svcOrder
	var err error
	for deadline := time.Now().Add(5 * time.Minute); ; {
		o, err = ss.h.order(ss.order.ID)
		if err == nil && o.Status != "created" && o.Status != "fetched" {
			break
		}
		if err == nil && time.Now().After(deadline) {
			err = fmt.Errorf("order still %s after 5 min", o.Status)
		}
		if err != nil || ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
			break
		}
		time.Sleep(3 * time.Second)
	}
	if js, jerr := json.MarshalIndent(o, "", "  "); jerr == nil {
		_ = os.WriteFile(filepath.Join(g.dir, "order.json"), js, 0o644)
	}
	if !g.res.check("report came home: order left created/fetched", err) {
		_, out, _ := g.vm.qgaExec(ctx, 60*time.Second, "/bin/sh", "-c", "cat /var/lib/hardbake/report-delivery.json; ls -l /var/lib/hardbake; journalctl -b -u hardbake-report --no-pager | tail -20")
		_ = os.WriteFile(filepath.Join(g.dir, "report-delivery.txt"), []byte(out), 0o644)
		return
	}
	// The guest's own record of the delivery (read through
	// qemu-guest-agent, which works whatever SSH's state).
	code, out, err := g.vm.qgaExec(ctx, 60*time.Second, "/bin/cat", "/var/lib/hardbake/report-delivery.json")
	_ = os.WriteFile(filepath.Join(g.dir, "report-delivery.json"), []byte(out), 0o644)
	var d struct {
		Result string `json:"result"`
		Status int    `json:"status"`
	}
	if err == nil && code != 0 {
		err = fmt.Errorf("cat exited %d: %s", code, out)
	}
	if err == nil {
		err = json.Unmarshal([]byte(out), &d)
	}
	if err == nil && (d.Result != "sent" || d.Status != http.StatusOK) {
		err = fmt.Errorf("delivery %+v", d)
	}
	g.res.check("guest records the delivery: sent, HTTP 200", err)
	g.res.check("order fetched by NoCloud-Net (fetched_at set)", boolErr(o.FetchedAt != nil, "no fetched_at"))
	g.res.check("order status hardened", boolErr(o.Status == "hardened", "status "+o.Status))
	fp := ""
	if hostKey != nil {
		fp = ssh.FingerprintSHA256(hostKey)
	}
	var got []string
	for _, k := range o.HostKeys {
		got = append(got, k.Type+" "+k.Fingerprint)
	}
	g.res.check("order's host keys hold the fingerprint the SSH client saw", boolErr(fp != "" && slices.ContainsFunc(o.HostKeys, func(k struct {
		Type        string `json:"type"`
		Fingerprint string `json:"fingerprint"`
	}) bool {
		return k.Fingerprint == fp
	}), fmt.Sprintf("client saw %q; order lists %v", fp, got)))
}
