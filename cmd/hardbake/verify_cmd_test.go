package main

import (
	"bytes"
	"encoding/json"
	"hardbake.dev/hardbake/bake/baketest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/verify"
	"hardbake.dev/hardbake/verify/sshdtest"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVerifyUsage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"verify"}, "want `verify host ADDRESS` or `verify image IMAGE`"},
		{[]string{"verify", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"verify", "host"}, "want exactly one ADDRESS"},
		{[]string{"verify", "host", "a", "b"}, "want exactly one ADDRESS, got 2"},
		{[]string{"verify", "host", "h"}, "--port is required without --order"},
		{[]string{"verify", "host", "h", "--profile", "strict"}, "--port is required with --profile"},
		{[]string{"verify", "host", "h", "--port", "70000"}, "--port: 70000"},
		{[]string{"verify", "host", "h", "--port", "22", "--known-fingerprint", "MD5:aa"}, `--known-fingerprint: "MD5:aa"`},
		{[]string{"verify", "host", "h", "--port", "22", "--identity", "/nonexistent/key"}, "--identity: open /nonexistent/key"},
		{[]string{"verify", "host", "h", "--port", "22", "--profile", "no-such"}, `--profile: "no-such" is neither`},
		{[]string{"verify", "host", "h", "--port", "22", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"verify", "host", "h", "--port", "22", "--forwarded", "22:2222"}, `--forwarded: "22:2222" is not PORT=HOSTPORT`},
		{[]string{"verify", "image"}, "want exactly one IMAGE, got 0"},
		{[]string{"verify", "image", "/nonexistent.qcow2"}, `IMAGE "/nonexistent.qcow2" is not a file`},
		{[]string{"verify", "image", img, "--accel", "xen"}, `--accel: "xen"`},
		{[]string{"verify", "image", img, "--net", "bridge"}, `--net: "bridge"`},
		{[]string{"verify", "image", img, "--seed", "seed.img"}, `--seed: "seed.img" is not an .iso`},
		{[]string{"verify", "image", img, "--initrd", "x"}, "--initrd and --append need --kernel"},
		{[]string{"verify", "image", img, "--timeout", "0s"}, "must be positive"},
		{[]string{"verify", "image", img, "--guestfwd", "tcp:10.0.2.100:80-cmd:a,b"}, "--guestfwd: want"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitInput || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if code, stdout, _ := runCLI(t, "verify", "--help"); code != exitOK || !strings.Contains(stdout, "hardbake verify image IMAGE") {
		t.Errorf("verify --help: exit %d: %s", code, stdout)
	}
}

// strictCrypto is the strict profile's sshd crypto, rendered.
func strictCrypto(t *testing.T) string {
	t.Helper()
	p, err := loadProfile("strict")
	if err != nil {
		t.Fatal(err)
	}
	m, err := syntheticMachine(p, "admin", 50022)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, placeholderAgent(), render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.Split(res.Plan.SSH.DropIn.Content, "\n") {
		if f := strings.Fields(l); len(f) > 0 && regexp.MustCompile(`^(?i)(kexalgorithms|ciphers|macs|hostkeyalgorithms)$`).MatchString(f[0]) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestVerifyHostExitCodes runs `verify host` against a real sshd: exit 0
// when every check passes (no key: the login checks skip), exit 1 and the
// right check named when password login is on.
func TestVerifyHostExitCodes(t *testing.T) {
	crypto := strictCrypto(t)
	t.Run("pass", func(t *testing.T) {
		s := sshdtest.Start(t, crypto+"AuthenticationMethods publickey\n")
		// As behind QEMU's forwards: the machine's 50022 is the test sshd,
		// its 22 a port where nothing listens.
		code, stdout, stderr := runCLI(t, "verify", "host", "127.0.0.1", "--port", "50022", "--profile", "strict", "--known-fingerprint", s.HostFP,
			"--forwarded", "50022="+strconv.Itoa(s.Port), "--forwarded", "22="+strconv.Itoa(sshdtest.FreePort(t)))
		if code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"PASS    SSH banner on port 50022", "PASS    no SSH on port 22", "PASS    crypto: offered algorithms vs policy modern", "PASS    password and keyboard-interactive not offered", "SKIP    key login as admin", "PASS    host key matches the given fingerprints"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("password login on", func(t *testing.T) {
		s := sshdtest.Start(t, crypto+"PasswordAuthentication yes\n")
		code, stdout, stderr := runCLI(t, "verify", "host", "127.0.0.1", "--port", strconv.Itoa(s.Port), "--profile", "strict", "--json")
		if code != exitFailure {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
		}
		var doc struct {
			OK     bool `json:"ok"`
			Checks []struct {
				ID, Status, Evidence string
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("--json: %v\n%s", err, stdout)
		}
		var failed []string
		for _, c := range doc.Checks {
			if c.Status == "FAIL" {
				failed = append(failed, c.ID+": "+c.Evidence)
			}
		}
		if doc.OK || len(failed) != 1 || !strings.Contains(failed[0], "no-password-auth: the server offers password") {
			t.Errorf("failed checks %q, want only no-password-auth", failed)
		}
		if !strings.Contains(stderr, "1 check(s) failed: password and keyboard-interactive not offered") {
			t.Errorf("stderr: %s", stderr)
		}
	})
}

// fakeQEMUPath puts a fake qemu-system-x86_64 and qemu-img first in PATH;
// the fake acts out mode: "silent", "kernel" (never reports) or "report".
func fakeQEMUPath(t *testing.T, mode string) {
	t.Helper()
	bin := t.TempDir()
	q := `#!/bin/sh
case ` + mode + ` in
kernel) echo "[    0.000000] Linux version 6.1.0-fake"; echo "cloud-init starting" ;;
report) echo "[    0.000000] Linux version 6.1.0-fake"; echo "[   40.1] hardbake-firstboot[812]: hardbake: hardened (profile strict)" ;;
esac
exec sleep 300
`
	img := "#!/bin/sh\nfor last; do :; done\n[ \"$1\" = create ] && : > \"$last\"\nexit 0\n"
	for name, body := range map[string]string{"qemu-system-x86_64": q, "qemu-img": img} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
}

// TestVerifyImageFailures drives `verify image` through QEMU's failure
// modes with a fake QEMU: each ends fast with one line naming the cause
// and the console log, exit 1.
func TestVerifyImageFailures(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	agent := filepath.Join(dir, "agent")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, baketest.StaticELF("amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := []string{"verify", "image", img, "--profile", "strict", "--agent-binary", agent, "--accel", "tcg"}
	tests := []struct {
		name  string
		mode  string // "" : no qemu at all
		extra []string
		want  []string
	}{
		{"qemu missing", "", nil, []string{"hardbake: verify: qemu missing: qemu-system-x86_64 not found"}},
		{"never boots", "silent", []string{"--boot-timeout", "1s"}, []string{"hardbake: verify: image does not boot: no kernel start", "within 1s; the console stayed empty (console log: "}},
		{"never reports", "kernel", []string{"--timeout", "1s"}, []string{"hardbake: verify: guest never reported: no agent console line", "last console line: cloud-init starting (console log: "}},
		{"reports, checks fail", "report", []string{"--login-timeout", "1s", "--op-timeout", "2s"}, []string{"check(s) failed: SSH banner on port", "key login as admin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode == "" {
				t.Setenv("PATH", t.TempDir())
			} else {
				fakeQEMUPath(t, tc.mode)
			}
			start := time.Now()
			keep := t.TempDir()
			code, stdout, stderr := runCLI(t, append(append([]string(nil), base...), append(tc.extra, "--keep", keep)...)...)
			if code != exitFailure {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if time.Since(start) > time.Minute {
				t.Errorf("took %s", time.Since(start))
			}
			if tc.mode == "report" && !strings.Contains(stdout, "PASS    agent console line says hardened") {
				t.Errorf("table:\n%s", stdout)
			}
		})
	}
}

// TestVerifyImageSeedPlan boots (a fake QEMU) with a seed `hardbake iso`
// wrote and checks verify read its expectations from the seed's plan.
func TestVerifyImageSeedPlan(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	agent := filepath.Join(dir, "agent")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, baketest.StaticELF("amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, line, err := verify.NewKey("test")
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.iso")
	code, _, stderr := runCLI(t, "iso", "--profile", "strict", "--hostname", "web-1", "--ssh-key", line, "--allow", "8443/tcp", "--agent-binary", agent, "-o", seed)
	if code != 0 {
		t.Fatalf("iso: %s", stderr)
	}
	port := regexp.MustCompile(`ssh port (\d+)`).FindStringSubmatch(stderr)[1]
	fakeQEMUPath(t, "report")
	code, stdout, stderr := runCLI(t, "verify", "image", img, "--seed", seed, "--accel", "tcg", "--keep", t.TempDir(), "--login-timeout", "1s", "--op-timeout", "2s", "--json")
	if code != exitFailure {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var doc struct {
		Expect struct {
			SSHPort int    `json:"ssh_port"`
			Admin   string `json:"admin"`
			Policy  struct {
				Name string `json:"name"`
			} `json:"crypto_policy"`
			Open []struct {
				Port int `json:"port"`
			} `json:"open"`
		} `json:"expect"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if strconv.Itoa(doc.Expect.SSHPort) != port || doc.Expect.Admin != "admin" || doc.Expect.Policy.Name != "modern" ||
		len(doc.Expect.Open) != 1 || doc.Expect.Open[0].Port != 8443 {
		t.Errorf("expectations from the seed: %+v (want ssh port %s, admin, modern, open 8443)", doc.Expect, port)
	}
}
