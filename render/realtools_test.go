package render_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// These tests hand every rendered document to the real tool that will read
// it on the VPS: cloud-init, sshd, nft, iptables-restore, fail2ban, ssh-audit.

var exampleCombos = []struct{ profile, order string }{
	{"baseline", "web-order.yaml"},
	{"baseline", "db-order.json"},
	{"baseline", "minimal-order.yaml"},
	{"strict", "web-order.yaml"},
	{"strict", "db-order.json"},
	{"strict", "minimal-order.yaml"},
	{"mirror-profile.yaml", "web-order.yaml"},
}

func TestCloudInitSchemaAcceptsUserData(t *testing.T) {
	ci := testtool.Require(t, "cloud-init")
	agents := map[string]render.Agent{
		"seed":  fakeAgent,
		"url":   render.NewAgent(render.AgentURL, "amd64", []byte("agent"), "https://agents.example.com/hardbake-firstboot"),
		"embed": render.NewAgent(render.AgentEmbed, "arm64", []byte("a small stand-in for the agent binary"), ""),
	}
	for _, c := range exampleCombos {
		for kind, agent := range agents {
			t.Run(c.profile+"/"+c.order+"/"+kind, func(t *testing.T) {
				t.Parallel()
				res := compileExample(t, c.profile, c.order, agent)
				path := filepath.Join(t.TempDir(), "user-data")
				if err := os.WriteFile(path, res.UserData, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(ci, "schema", "--config-file", path).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
					t.Fatalf("cloud-init schema rejected the user-data: %v\n%s", err, out)
				}
				if strings.Contains(strings.ToLower(string(out)), "deprecat") {
					t.Fatalf("cloud-init schema reports a deprecation:\n%s", out)
				}
			})
		}
	}
}

// sshdConfig writes an sshd_config that includes the rendered drop-in, with
// throwaway host keys of every type a Debian image has.
func sshdConfig(t *testing.T, dropIn string, extra ...string) string {
	t.Helper()
	keygen := testtool.Require(t, "ssh-keygen")
	dir := t.TempDir()
	lines := []string{"Include " + filepath.Join(dir, "10-hardbake.conf")}
	for _, kt := range []string{"ed25519", "rsa", "ecdsa"} {
		key := filepath.Join(dir, "ssh_host_"+kt+"_key")
		if out, err := exec.Command(keygen, "-q", "-t", kt, "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		lines = append(lines, "HostKey "+key)
	}
	lines = append(lines, extra...)
	if err := os.WriteFile(filepath.Join(dir, "10-hardbake.conf"), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testtool.SSHDPrivsepDir(t) // sshd -t insists on it
	return cfg
}

func TestSSHDAcceptsDropIn(t *testing.T) {
	sshd := testtool.Require(t, "sshd")
	for _, c := range exampleCombos {
		t.Run(c.profile+"/"+c.order, func(t *testing.T) {
			res := compileExample(t, c.profile, c.order, fakeAgent)
			cfg := sshdConfig(t, res.Plan.SSH.DropIn.Content)
			if out, err := exec.Command(sshd, "-t", "-f", cfg).CombinedOutput(); err != nil {
				t.Fatalf("sshd -t: %v\n%s", err, out)
			}
			out, err := exec.Command(sshd, "-T", "-f", cfg).Output()
			if err != nil {
				t.Fatalf("sshd -T: %v", err)
			}
			effective := map[string]string{}
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				k, v, _ := strings.Cut(sc.Text(), " ")
				if _, seen := effective[k]; !seen {
					effective[k] = v
				}
			}
			for k, want := range res.Plan.SSH.Expect {
				if got := effective[k]; got != want {
					t.Errorf("sshd -T %s = %q, plan expects %q", k, got, want)
				}
			}
		})
	}
}

func TestNftAcceptsRuleset(t *testing.T) {
	nft := testtool.Require(t, "nft")
	for _, c := range exampleCombos {
		t.Run(c.profile+"/"+c.order, func(t *testing.T) {
			res := compileExample(t, c.profile, c.order, fakeAgent)
			path := filepath.Join(t.TempDir(), "nftables.conf")
			if err := os.WriteFile(path, []byte(res.Plan.Firewall.Nftables.Content), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(nft, "-c", "-f", path).CombinedOutput(); err != nil {
				t.Fatalf("nft -c -f: %v\n%s", err, out)
			}
		})
	}
}

func TestIPTablesAcceptRules(t *testing.T) {
	v4 := testtool.Require(t, "iptables-restore")
	v6 := testtool.Require(t, "ip6tables-restore")
	for _, c := range exampleCombos {
		t.Run(c.profile+"/"+c.order, func(t *testing.T) {
			res := compileExample(t, c.profile, c.order, fakeAgent)
			for tool, f := range map[string]plan.File{v4: res.Plan.Firewall.IPTablesV4, v6: res.Plan.Firewall.IPTablesV6} {
				cmd := exec.Command(tool, "--test")
				cmd.Stdin = strings.NewReader(f.Content)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s --test %s: %v\n%s", tool, f.Path, err, out)
				}
			}
		})
	}
}

func TestFail2banAcceptsJailLocal(t *testing.T) {
	client := testtool.Require(t, "fail2ban-client")
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		testtool.SkipOrFail(t, "fail2ban's stock configuration is not installed")
	}
	for _, c := range exampleCombos {
		t.Run(c.profile+"/"+c.order, func(t *testing.T) {
			res := compileExample(t, c.profile, c.order, fakeAgent)
			dir := filepath.Join(t.TempDir(), "fail2ban")
			if out, err := exec.Command("cp", "-a", "/etc/fail2ban", dir).CombinedOutput(); err != nil {
				t.Fatalf("copy fail2ban config: %v\n%s", err, out)
			}
			os.Remove(filepath.Join(dir, "jail.local"))
			if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(res.Plan.Fail2ban.JailLocal.Content), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(client, "-c", dir, "-t").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK: configuration test is successful") {
				t.Fatalf("fail2ban-client -t: %v\n%s", err, out)
			}
			// The effective sshd jail must watch the real SSH port.
			out, err = exec.Command(client, "-c", dir, "-d").CombinedOutput()
			if err != nil {
				t.Fatalf("fail2ban-client -d: %v\n%s", err, out)
			}
			want := fmt.Sprintf("'port', '%d'", res.SSHPort)
			if !strings.Contains(string(out), want) {
				t.Errorf("fail2ban-client -d shows no %s for the sshd jail", want)
			}
		})
	}
}

// TestSSHAudit starts sshd on a loopback port with each built-in profile's
// drop-in and audits it: no [fail] for any profile, and for strict no [warn]
// beyond those DESIGN.md accepts for Debian 12's ssh-audit 2.5.0 (post-quantum
// key exchange it calls experimental, and names newer than it knows).
func TestSSHAudit(t *testing.T) {
	sshd := testtool.Require(t, "sshd")
	audit := testtool.Require(t, "ssh-audit")
	testtool.RequireRoot(t) // sshd needs root to start
	for _, profile := range []string{"baseline", "strict"} {
		t.Run(profile, func(t *testing.T) {
			port := freePort(t)
			res := compileOrder(t, profile, fmt.Sprintf("hostname: audit\nssh_port: %d\nssh_keys: [%q]\n", port, testKey(t)))
			cfg := sshdConfig(t, res.Plan.SSH.DropIn.Content, "ListenAddress 127.0.0.1", "PidFile none")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			daemon := exec.CommandContext(ctx, sshd, "-D", "-e", "-f", cfg)
			if err := daemon.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { daemon.Process.Kill(); daemon.Wait() }()
			waitListening(t, port)
			out, _ := exec.CommandContext(ctx, audit, "-n", "-p", fmt.Sprint(port), "127.0.0.1").CombinedOutput()
			if !strings.Contains(string(out), "OpenSSH") {
				t.Fatalf("ssh-audit did not reach sshd:\n%s", out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				switch {
				case strings.Contains(line, "[fail]"):
					t.Errorf("ssh-audit fails: %s", line)
				case strings.Contains(line, "[warn]") && profile == "strict" && !acceptedWarning(line):
					t.Errorf("ssh-audit warns: %s", line)
				}
			}
		})
	}
}

func acceptedWarning(line string) bool {
	return strings.HasPrefix(line, "(kex)") &&
		(strings.Contains(line, "using experimental algorithm") || strings.Contains(line, "unknown algorithm"))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sshd did not listen on %d", port)
}

// TestAIDEConfigAndUnits hands strict's AIDE files to the real tools: aide
// parses the configuration (as Lynis' FINT-4315 does), a database built
// with its rule set over a small tree catches a changed file, and
// systemd-analyze accepts the units.
func TestAIDEConfigAndUnits(t *testing.T) {
	aide := testtool.Require(t, "aide")
	analyze := testtool.Require(t, "systemd-analyze")
	res := compileExample(t, "strict", "web-order.yaml", fakeAgent)
	files := map[string]string{}
	for _, f := range res.Plan.System.Files {
		files[f.Path] = f.Content
	}
	conf, ok := files["/etc/aide/aide.conf"]
	if !ok {
		t.Fatal("strict's plan has no /etc/aide/aide.conf")
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "aide.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(aide, "--config="+confPath, "-D").CombinedOutput(); err != nil {
		t.Fatalf("aide -D rejected the configuration: %v\n%s", err, out)
	}

	// The same settings and rule set, pointed at a tree and a database of
	// the test's own.
	tree, db := filepath.Join(dir, "tree"), filepath.Join(dir, "db")
	for _, d := range []string{tree, db} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	watched := filepath.Join(tree, "sshd_config")
	if err := os.WriteFile(watched, []byte("Port 2222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var local strings.Builder
	for _, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(line, "/") || strings.HasPrefix(line, "!/") {
			continue // the machine's selection lines
		}
		local.WriteString(strings.ReplaceAll(line, "/var/lib/aide", db) + "\n")
	}
	local.WriteString(tree + " Checks\n")
	localPath := filepath.Join(dir, "local.conf")
	if err := os.WriteFile(localPath, []byte(local.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(aide, "--config="+localPath, "--init").CombinedOutput(); err != nil {
		t.Fatalf("aide --init: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(db, "aide.db.new"), filepath.Join(db, "aide.db")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(aide, "--config="+localPath, "--check").CombinedOutput(); err != nil {
		t.Fatalf("aide --check on an unchanged tree: %v\n%s", err, out)
	}
	if err := os.WriteFile(watched, []byte("Port 22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(aide, "--config="+localPath, "--check").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() < 1 || exit.ExitCode() > 7 || !strings.Contains(string(out), watched) {
		t.Fatalf("aide --check after a change: want exit 1-7 naming %s, got %v\n%s", watched, err, out)
	}

	units := filepath.Join(dir, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for path, content := range files {
		if filepath.Dir(path) != "/etc/systemd/system" || !strings.HasPrefix(filepath.Base(path), "hardbake-aide-") {
			continue
		}
		p := filepath.Join(units, filepath.Base(path))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if len(paths) != 3 {
		t.Fatalf("want 3 AIDE units in the plan, got %v", paths)
	}
	if out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDebsumsCheckUnits runs the command of strict's debsums check unit,
// pointed at a one-package dpkg database of the test's own: it passes on
// untouched files and fails (exit 2, which fails the unit) naming a changed
// or a missing one. systemd-analyze accepts both units.
func TestDebsumsCheckUnits(t *testing.T) {
	testtool.Require(t, "debsums")
	analyze := testtool.Require(t, "systemd-analyze")
	res := compileExample(t, "strict", "web-order.yaml", fakeAgent)
	dir := t.TempDir()
	units := filepath.Join(dir, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	var execStart []string
	for _, f := range res.Plan.System.Files {
		if filepath.Dir(f.Path) != "/etc/systemd/system" || !strings.HasPrefix(filepath.Base(f.Path), "hardbake-debsums-") {
			continue
		}
		p := filepath.Join(units, filepath.Base(f.Path))
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		for _, line := range strings.Split(f.Content, "\n") {
			if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
				execStart = strings.Fields(cmd)
			}
		}
	}
	if len(paths) != 2 || execStart == nil {
		t.Fatalf("want strict's debsums service and timer with an ExecStart, got %v, ExecStart %q", paths, execStart)
	}
	if out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	root := filepath.Join(dir, "root")
	pkgFile := filepath.Join(root, "usr/share/hbtest/file")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(pkgFile, "hello\n")
	info := filepath.Join(root, "var/lib/dpkg/info")
	write(filepath.Join(root, "var/lib/dpkg/status"), "Package: hbtest\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\nMaintainer: hardbake tests <tests@hardbake.invalid>\nDescription: test package\n\n")
	write(filepath.Join(info, "hbtest.list"), "/.\n/usr\n/usr/share\n/usr/share/hbtest\n/usr/share/hbtest/file\n")
	write(filepath.Join(info, "hbtest.md5sums"), "b1946ac92492d2347c6235b4d2611184  usr/share/hbtest/file\n") // md5("hello\n")

	check := func() (string, int) {
		t.Helper()
		out, err := exec.Command(execStart[0], append(execStart[1:], "--root="+root)...).CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		}
		t.Fatalf("%s: %v", strings.Join(execStart, " "), err)
		return "", 0
	}
	if out, code := check(); code != 0 {
		t.Fatalf("untouched files: exit %d, want 0\n%s", code, out)
	}
	write(pkgFile, "changed\n")
	if out, code := check(); code != 2 || !strings.Contains(out, pkgFile) {
		t.Fatalf("changed file: exit %d, want 2 naming %s\n%s", code, pkgFile, out)
	}
	if err := os.Remove(pkgFile); err != nil {
		t.Fatal(err)
	}
	if out, code := check(); code != 2 || !strings.Contains(out, pkgFile) {
		t.Fatalf("missing file: exit %d, want 2 naming %s\n%s", code, pkgFile, out)
	}
}
