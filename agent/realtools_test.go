package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
)

// needTool skips when a real tool is missing or the test does not run as
// root, unless HARDBAKE_REQUIRE_TOOLS=1, where it fails.
func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := (ExecRunner{}).LookPath(n); err != nil {
			testtool.SkipOrFail(t, "%s not installed: %v", n, err)
		}
	}
	testtool.RequireRoot(t)
}

func TestExecRunner(t *testing.T) {
	var r ExecRunner
	out, err := r.Run("sh", "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\n" {
		t.Fatalf("%q %v", out, err)
	}
	_, err = r.Run("sh", "-c", "echo boom >&2; exit 3")
	var ee *ExitError
	if !asExit(err, &ee) || ee.Code != 3 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("%v", err)
	}
	if _, err := r.Run("no-such-tool-hardbake"); err == nil {
		t.Fatal("missing tool ran")
	}
}

// A child that leaves a descendant holding its stdout open must not hold
// the agent (and cloud-init) until the descendant exits.
func TestExecRunnerDescendantHoldsStdout(t *testing.T) {
	start := time.Now()
	out, err := (ExecRunner{}).Run("sh", "-c", "sleep 60 & echo hi")
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("%q %v", out, err)
	}
	if d := time.Since(start); d > cmdWaitDelay+5*time.Second {
		t.Fatalf("Run took %v with a descendant holding stdout (WaitDelay %v)", d, cmdWaitDelay)
	}
	// The same with a failing command: the exit status still counts.
	_, err = (ExecRunner{WaitDelay: 100 * time.Millisecond}).Run("sh", "-c", "sleep 60 & echo bad >&2; exit 4")
	var ee *ExitError
	if !asExit(err, &ee) || ee.Code != 4 {
		t.Fatalf("%v", err)
	}
}

// A command that outlives its timeout is killed with its whole process
// group, and the error says so.
func TestExecRunnerTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err := (ExecRunner{Timeout: 300 * time.Millisecond, WaitDelay: 100 * time.Millisecond}).Run(
		"sh", "-c", "sleep 60 & echo $! > "+pidFile+"; wait")
	if err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	data, _ := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
	if perr != nil {
		t.Fatalf("pid file %q", data)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil { // reaped by init once killed
		if time.Now().After(deadline) {
			t.Fatalf("descendant %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Commands read /dev/null, never the agent's stdin (cloud-init's).
func TestExecRunnerStdin(t *testing.T) {
	out, err := (ExecRunner{}).Run("sh", "-c", "cat; echo done")
	if err != nil || string(out) != "done\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func asExit(err error, target **ExitError) bool {
	e, ok := err.(*ExitError)
	*target = e
	return ok
}

// sshd -t/-T as the agent runs them, on a machine with no host keys: a
// throwaway key is generated and the privilege separation dir created.
func TestRealSSHDNoHostKeys(t *testing.T) {
	needTool(t, "sshd", "ssh-keygen")
	testtool.SSHDPrivsepDir(t) // the real sshd's, not the one sshdArgs makes under root
	root := t.TempDir()
	r := &run{Agent: &Agent{Root: Root{Dir: root}, Runner: ExecRunner{}}}
	args, err := r.sshdArgs()
	defer r.removeThrowawayKey()
	if err != nil || len(args) != 2 || !strings.HasPrefix(args[1], "HostKey="+root) {
		t.Fatalf("%q %v", args, err)
	}
	cfg := filepath.Join(root, "sshd_config")
	os.WriteFile(cfg, []byte("Port 50022\nPermitRootLogin no\nPasswordAuthentication no\nMaxAuthTries 3\nAllowUsers admin ops@10.0.0.1\nAllowGroups sshusers wheel\nHostKey "+strings.TrimPrefix(args[1], "HostKey=")+"\n"), 0o600)
	if _, err := r.Runner.Run("sshd", "-t", "-f", cfg); err != nil {
		t.Fatalf("sshd -t: %v", err)
	}
	out, err := r.Runner.Run("sshd", "-T", "-f", cfg)
	if err != nil {
		t.Fatalf("sshd -T: %v", err)
	}
	eff := ParseSSHDT(string(out))
	if err := checkExpect(eff, map[string]string{"port": "50022", "permitrootlogin": "no", "passwordauthentication": "no", "maxauthtries": "3"}); err != nil {
		t.Error(err)
	}
	// The lists checkSSHDAdmits reads, in the shape the real sshd prints.
	// (UsePAM is not set here: sshd's compiled default is no, Debian's
	// sshd_config sets yes; checkShadow reads whichever is in effect.)
	if !slices.Equal(eff["allowusers"], []string{"admin", "ops@10.0.0.1"}) || !slices.Equal(eff["allowgroups"], []string{"sshusers", "wheel"}) {
		t.Errorf("allowusers %q allowgroups %q", eff["allowusers"], eff["allowgroups"])
	}
	os.WriteFile(cfg, []byte("Port 50022\nBogusOption yes\n"), 0o600)
	// -T validates like -t: applySSH relies on it after installing the drop-in.
	for _, mode := range []string{"-t", "-T"} {
		if _, err := r.Runner.Run("sshd", mode, "-f", cfg); err == nil || !strings.Contains(err.Error(), "Bogus") {
			t.Errorf("sshd %s accepted a bad option: %v", mode, err)
		}
	}
}

// A stray "Port 22" next to the drop-in shows up as two port values.
func TestParseSSHDTMultiplePorts(t *testing.T) {
	eff := ParseSSHDT("port 50022\nport 22\npermitrootlogin no\n")
	if err := checkExpect(eff, map[string]string{"port": "50022"}); err == nil {
		t.Error("two ports passed as one")
	}
}

func TestRealNftCheckAndParse(t *testing.T) {
	needTool(t, "nft")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.nft")
	os.WriteFile(rules, []byte(testPlan().Firewall.Nftables.Content), 0o600)
	if out, err := exec.Command("nft", "-c", "-f", rules).CombinedOutput(); err != nil {
		testtool.SkipOrFail(t, "nft -c unusable here (no netlink permission?): %v %s", err, out)
	}
	if _, err := (ExecRunner{}).Run("nft", "-c", "-f", rules); err != nil {
		t.Fatalf("nft -c: %v", err)
	}
	// The JSON shape nft -j lists, checked by nft itself as JSON input.
	fixture := fakeNftJSON(testPlan().Firewall.Nftables.Content)
	fixture = strings.Replace(fixture, `{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, `, "", 1)
	js := filepath.Join(dir, "rules.json")
	os.WriteFile(js, []byte(fixture), 0o600)
	if out, err := exec.Command("nft", "-j", "-c", "-f", js).CombinedOutput(); err != nil {
		t.Fatalf("nft rejects the JSON fixture: %v %s", err, out)
	}
	rs, err := ParseNftJSON([]byte(fixture))
	if err != nil || rs.PolicyV4 != "drop" || rs.PolicyV6 != "drop" || len(rs.V4) != 2 || len(rs.V6) != 2 {
		t.Fatalf("%+v %v", rs, err)
	}
	// This machine's own ruleset (read only) parses.
	out, err := (ExecRunner{}).Run("nft", "-j", "list", "ruleset")
	if err != nil {
		t.Fatalf("nft list: %v", err)
	}
	if _, err := ParseNftJSON(out); err != nil {
		t.Fatalf("parse live ruleset: %v", err)
	}
}

func TestParseNftJSONForms(t *testing.T) {
	in := `{"nftables":[{"chain":{"family":"ip6","table":"f","name":"in","hook":"input","policy":"drop"}},
	{"chain":{"family":"ip","table":"f","name":"in","hook":"input","policy":"drop"}},
	{"chain":{"family":"ip","table":"f","name":"svc"}},
	{"rule":{"family":"ip","table":"f","chain":"in","expr":[{"jump":{"target":"svc"}}]}},
	{"rule":{"family":"ip","table":"f","chain":"svc","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"set":[80,443]}}},{"accept":null}]}},
	{"rule":{"family":"ip","table":"f","chain":"in","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"10.0.0.1"}},{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"accept":null}]}},
	{"rule":{"family":"ip6","table":"f","chain":"in","expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"udp"}},{"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":{"range":[60000,60002]}}},{"accept":null}]}}]}`
	rs, err := ParseNftJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := portsString(rs.V4); got != "80/tcp 443/tcp" {
		t.Errorf("v4 %s (a source-restricted rule must not count)", got)
	}
	if got := portsString(rs.V6); got != "60000/udp 60001/udp 60002/udp" {
		t.Errorf("v6 %s", got)
	}
}

func portsString(ps []plan.Port) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(p.Port)+"/"+p.Proto)
	}
	return strings.Join(s, " ")
}

func TestRealIptablesParse(t *testing.T) {
	needTool(t, "iptables")
	out, err := (ExecRunner{}).Run("iptables", "-S")
	if err != nil {
		testtool.SkipOrFail(t, "iptables -S unusable here: %v", err)
	}
	if policy, _ := ParseIptablesS(string(out)); policy == "" {
		t.Errorf("no INPUT policy in %q", out)
	}
	policy, ports := ParseIptablesS("-P INPUT DROP\n-A INPUT -i lo -j ACCEPT\n-A INPUT -s 10.0.0.0/8 -p tcp --dport 22 -j ACCEPT\n-A INPUT -j svc\n-A svc -p tcp -m multiport --dports 50022,443 -m conntrack --ctstate NEW -j ACCEPT\n")
	if policy != "drop" || portsString(ports) != "443/tcp 50022/tcp" {
		t.Errorf("%s %s", policy, portsString(ports))
	}
}

// Host keys as the report records them, through the real ssh-keygen, match
// `ssh-keygen -lf` and SHA256 over the key blob computed here.
func TestRealHostKeysMatchSSHKeygen(t *testing.T) {
	needTool(t, "ssh-keygen")
	root := t.TempDir()
	dir := filepath.Join(root, "etc", "ssh")
	os.MkdirAll(dir, 0o755)
	want := map[string]string{}
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		key := filepath.Join(dir, "ssh_host_"+typ+"_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		out, err := exec.Command("ssh-keygen", "-lf", key+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := os.ReadFile(key + ".pub")
		fp, ok := sshKeygenFingerprint(string(pub))
		if !ok || strings.Fields(string(out))[1] != fp {
			t.Fatalf("%s: computed %s, ssh-keygen -lf says %s", typ, fp, out)
		}
		want[strings.Fields(string(pub))[0]] = fp
	}
	// Not a key: left out, not an error.
	os.WriteFile(filepath.Join(dir, "ssh_host_bogus_key.pub"), []byte("ssh-bogus AAAA x\n"), 0o644)
	a := &Agent{Root: Root{Dir: root}, Runner: ExecRunner{}}
	keys := a.hostKeys()
	got := map[string]string{}
	for _, k := range keys {
		got[k.Type] = k.Fingerprint
	}
	if len(keys) != 3 || !maps.Equal(got, want) {
		t.Errorf("host keys %+v, want %v", keys, want)
	}
}

// The plan digest through the real sha256sum equals crypto/sha256, also
// for a file name sha256sum must escape.
func TestRealSHA256Sum(t *testing.T) {
	needTool(t, "sha256sum")
	root := t.TempDir()
	a := &Agent{Root: Root{Dir: root}, Runner: ExecRunner{}}
	for _, name := range []string{"/plan.json", "/-dash", "/back\\slash", "/new\nline"} {
		data := []byte("content of " + name)
		os.WriteFile(filepath.Join(root, name), data, 0o600)
		sum := sha256.Sum256(data)
		got, err := a.fileSHA256(name)
		if err != nil || got != hex.EncodeToString(sum[:]) {
			t.Errorf("%q: %s %v, want %x", name, got, err, sum)
		}
	}
	if _, err := a.fileSHA256("/missing"); err == nil {
		t.Error("missing file hashed")
	}
}

func TestRealFail2banConfigTest(t *testing.T) {
	needTool(t, "fail2ban-client")
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		testtool.SkipOrFail(t, "fail2ban's stock configuration (/etc/fail2ban) is not installed")
	}
	// A copy of the packaged config plus the plan's jail.local, tested the
	// way the late stage tests it (fail2ban-client -t), without a server.
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", "/etc/fail2ban/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "jail.local"), []byte(testPlan().Fail2ban.JailLocal.Content), 0o644)
	if _, err := (ExecRunner{}).Run("fail2ban-client", "-c", dir, "-t"); err != nil {
		t.Errorf("fail2ban-client -t: %v", err)
	}
	if got := ParseF2BActions("The jail sshd has the following actions:\nnftables-multiport, sendmail"); strings.Join(got, ",") != "nftables-multiport,sendmail" {
		t.Errorf("actions %q", got)
	}
}

// The admin's sudo proof through the real runuser and sudo, with the
// accounts every Debian machine has: root may (sudo -n true succeeds, and
// Debian's sudoers grants it "(ALL : ALL) ALL"), nobody may not.
func TestRealAdminSudo(t *testing.T) {
	needTool(t, "runuser", "sudo")
	for _, tc := range []struct {
		user, rule string
		ok         bool
		want       string
	}{
		{"root", plan.SudoNopasswd, true, ""},
		{"root", plan.SudoPassword, true, ""},
		{"nobody", plan.SudoNopasswd, false, "sudo: a password is required"},
		{"nobody", plan.SudoPassword, false, "does not grant (ALL) ALL"},
	} {
		r := &run{Agent: &Agent{Root: Root{Dir: "/"}, Runner: ExecRunner{}},
			plan: &plan.Plan{Accounts: plan.Accounts{Admin: tc.user, AdminSudo: tc.rule}}}
		a := plan.AdminState{User: tc.user}
		err := r.adminSudo(&a)
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %s: %v, want ok=%v %q", tc.user, tc.rule, err, tc.ok, tc.want)
		}
		if tc.ok && a.Sudo != tc.rule {
			t.Errorf("%s %s: proven %q", tc.user, tc.rule, a.Sudo)
		}
	}
}

// The login shell check against the real /etc/shells and shells.
func TestRealShells(t *testing.T) {
	r := &run{Agent: &Agent{Root: Root{Dir: "/"}}}
	if err := r.checkShell("/bin/sh"); err != nil {
		t.Errorf("/bin/sh: %v", err)
	}
	for _, sh := range []string{"/usr/sbin/nologin", "/bin/false", "/etc/passwd", "/nonexistent/sh"} {
		if err := r.checkShell(sh); err == nil {
			t.Errorf("%s accepted as a login shell", sh)
		}
	}
}

// WriteAtomic makes the rename durable: strace shows the rename, then an
// fsync of a descriptor opened on the directory. The test runs itself
// under strace as a helper process.
func TestRealWriteAtomicFsyncsDir(t *testing.T) {
	if dir := os.Getenv("HARDBAKE_WRITEATOMIC_DIR"); dir != "" {
		if err := (Root{Dir: dir}).WriteAtomic("/sub/file", []byte("new"), 0o644, ""); err != nil {
			t.Fatal(err)
		}
		return
	}
	st := testtool.Require(t, "strace")
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "strace.log")
	cmd := exec.Command(st, "-f", "-qq", "-e", "trace=openat,rename,renameat,renameat2,fsync", "-o", log,
		os.Args[0], "-test.run=^TestRealWriteAtomicFsyncsDir$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HARDBAKE_WRITEATOMIC_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "PTRACE") || strings.Contains(string(out), "ptrace") {
			testtool.SkipOrFail(t, "strace cannot trace here: %s", out)
		}
		t.Fatalf("%v\n%s", err, out)
	}
	data, _ := os.ReadFile(log)
	trace := string(data)
	sub := filepath.Join(dir, "sub")
	renamed := strings.Index(trace, `, "`+sub+`/file"`)
	if renamed < 0 {
		t.Fatalf("no rename onto %s/file in:\n%s", sub, trace)
	}
	after := trace[renamed:]
	open := regexp.MustCompile(`openat\(AT_FDCWD, "` + regexp.QuoteMeta(sub) + `", O_RDONLY\|O_CLOEXEC\|O_DIRECTORY\) = (\d+)`).FindStringSubmatch(after)
	if open == nil {
		t.Fatalf("the directory is not opened after the rename:\n%s", after)
	}
	if !strings.Contains(after, "fsync("+open[1]+")") {
		t.Fatalf("no fsync of the directory (fd %s) after the rename:\n%s", open[1], after)
	}
	if got, _ := os.ReadFile(filepath.Join(sub, "file")); string(got) != "new" {
		t.Errorf("content %q", got)
	}
}
