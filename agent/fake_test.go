package agent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// fakeMachine is a scripted Debian-like machine: systemd units, sshd that
// listens where its files say, nft/iptables that "load" the files they are
// given, sysctl, fail2ban and apt. It records every command.
type fakeMachine struct {
	t    *testing.T
	root string

	mu       sync.Mutex
	calls    []string
	tools    map[string]bool
	units    map[string]string // unit -> "enabled"/"disabled"
	active   map[string]bool
	listen   map[int]bool // ports answering an SSH banner
	fail     map[string]error
	nftRules string // loaded nft ruleset text
	ipt4     string // loaded iptables-restore text
	ipt6     string
	sysctl   map[string]string
	f2bUp    bool
	f2bPort  string
	// f2bRecidiveAction is the action the running recidive jail bans with.
	f2bRecidiveAction string
	// f2bRecorded, when set, is a directory scripts/record-fail2ban.sh
	// wrote: the running fail2ban answers every fail2ban-client command
	// with what a real server of that version printed.
	f2bRecorded string
	f2bStart    float64 // CLOCK_MONOTONIC seconds the daemon started at (0: unknown)
	uptime      float64 // what the agent's clock reads
	uuPkg       bool
	// sudoRule is what sudo grants the admin: "nopasswd", "password" or
	// "" (nothing).
	sudoRule string
	// noPAM makes sshd -T print "usepam no".
	noPAM bool
	// adminUID/GID own the admin's home (the test user's own ids when the
	// tests do not run as root and cannot chown).
	adminUID, adminGID int
	// sshdBroken makes a restarted sshd listen nowhere; with
	// fixOnRollback it still works on 22 (the old config).
	sshdBroken, fixOnRollback bool
	// netlink is the agent's NetlinkFirewall (nil: none, the firewall
	// waits for a tool).
	netlink NetlinkFirewall
}

func newFake(t *testing.T) *fakeMachine {
	root := t.TempDir()
	m := &fakeMachine{
		t: t, root: root,
		tools:  map[string]bool{"sshd": true, "ssh-keygen": true, "systemctl": true, "usermod": true, "sysctl": true, "nft": true, "dpkg-query": true, "apt-config": true, "sha256sum": true, "sudo": true, "runuser": true},
		units:  map[string]string{"ssh.service": "enabled", "ssh.socket": "disabled", "apt-daily-upgrade.timer": "enabled"},
		active: map[string]bool{},
		listen: map[int]bool{},
		fail:   map[string]error{},
		sysctl: map[string]string{},
		uptime: 12.5, sudoRule: "nopasswd",
		adminUID: 1000, adminGID: 1000,
	}
	if os.Geteuid() != 0 {
		m.adminUID, m.adminGID = os.Getuid(), os.Getgid()
	}
	m.write("/proc/sys/kernel/random/boot_id", "0b6e7e0c-93a1-4c1e-9f43-6d2f1e0c5a11\n", 0o444)
	m.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n", 0o644)
	m.write("/etc/ssh/ssh_host_ed25519_key", "private", 0o600)
	m.write("/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBg+o9Zy8Ywss8vOp1YxC9cvjn5YxA3V+3mM4mOlx9c5 root@x\n", 0o644)
	m.write("/etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/bin/bash\nadmin:x:%d:%d::/home/admin:/bin/bash\n", m.adminUID, m.adminGID), 0o644)
	m.write("/etc/group", fmt.Sprintf("root:x:0:\nadmin:x:%d:\n", m.adminGID), 0o644)
	m.write("/etc/shadow", "root:$y$hash:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\n", 0o640)
	m.write("/etc/shells", "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n", 0o644)
	m.write("/bin/bash", "#!fake shell\n", 0o755)
	m.write("/usr/sbin/nologin", "#!fake nologin\n", 0o755)
	m.write("/home/admin/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBg+o9Zy8Ywss8vOp1YxC9cvjn5YxA3V+3mM4mOlx9c5 admin\n", 0o600)
	for _, p := range []string{"/home/admin", "/home/admin/.ssh", "/home/admin/.ssh/authorized_keys"} {
		m.chown(p, m.adminUID, m.adminGID)
	}
	return m
}

func (m *fakeMachine) chown(p string, uid, gid int) {
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chown(filepath.Join(m.root, p), uid, gid); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) write(p, content string, mode os.FileMode) {
	full := filepath.Join(m.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		m.t.Fatal(err)
	}
	os.Remove(full) // a read-only file (boot_id is 0444) is replaced, also without root
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) read(p string) string {
	data, _ := os.ReadFile(filepath.Join(m.root, p))
	return string(data)
}

func (m *fakeMachine) agent() *Agent {
	return &Agent{
		Root: Root{Dir: m.root}, Runner: m, Uptime: func() float64 { return m.uptime },
		Banner: m.banner, Sleep: func(time.Duration) {}, Out: &strings.Builder{},
		Version: "test", Wait: time.Millisecond, Netlink: m.netlink,
	}
}

func (m *fakeMachine) LookPath(name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tools[name] {
		return "/usr/sbin/" + name, nil
	}
	return "", fmt.Errorf("%s: not found", name)
}

func (m *fakeMachine) banner(port int, _ time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listen[port] {
		return "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", nil
	}
	return "", errors.New("connection refused")
}

var portLine = regexp.MustCompile(`(?m)^Port (\d+)`)
var listenLine = regexp.MustCompile(`(?m)^ListenStream=(\d+)$`)

// sshdPort is the port sshd's files configure (first Port wins, like sshd).
func (m *fakeMachine) sshdPort() string {
	if mm := portLine.FindStringSubmatch(m.read("/etc/ssh/sshd_config.d/10-hardbake.conf")); mm != nil {
		return mm[1]
	}
	return "22"
}

// socketPort is where ssh.socket listens after a restart.
func (m *fakeMachine) socketPort(generated bool) string {
	if generated {
		return m.sshdPort()
	}
	if all := listenLine.FindAllStringSubmatch(m.read("/etc/systemd/system/ssh.socket.d/10-hardbake.conf"), -1); all != nil {
		return all[len(all)-1][1]
	}
	return "22"
}

func (m *fakeMachine) startSSH(port string) {
	m.listen = map[int]bool{}
	if !m.sshdBroken || (m.fixOnRollback && port == "22") {
		var n int
		fmt.Sscan(port, &n)
		m.listen[n] = true
	}
}

func (m *fakeMachine) callList() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *fakeMachine) Run(name string, args ...string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	line := strings.Join(append([]string{name}, args...), " ")
	line = strings.ReplaceAll(line, m.root, "")
	m.calls = append(m.calls, line)
	if !m.tools[name] {
		return nil, fmt.Errorf("%s: not found", name)
	}
	for prefix, err := range m.fail {
		if strings.HasPrefix(line, prefix) {
			return nil, &ExitError{Cmd: line, Code: 1, Stderr: err.Error()}
		}
	}
	arg := func(i int) string {
		if i < len(args) {
			return strings.ReplaceAll(args[i], m.root, "")
		}
		return ""
	}
	switch name {
	case "systemctl":
		switch arg(0) {
		case "is-enabled":
			if s, ok := m.units[arg(1)]; ok {
				return []byte(s + "\n"), nil
			}
			return []byte("disabled\n"), &ExitError{Cmd: line, Code: 1}
		case "is-active":
			if m.active[arg(1)] {
				return []byte("active\n"), nil
			}
			return []byte("inactive\n"), &ExitError{Cmd: line, Code: 3}
		case "enable":
			if arg(1) != "--no-reload" { // a reload mid-boot costs seconds
				m.t.Errorf("systemctl enable without --no-reload: %q", line)
			}
			m.units[arg(len(args)-1)] = "enabled"
		case "restart":
			m.active[arg(1)] = true
			switch arg(1) {
			case "ssh.service":
				m.startSSH(m.sshdPort())
			case "ssh.socket":
				m.startSSH(m.socketPort(m.exists("/usr/lib/systemd/system-generators/sshd-socket-generator")))
			case "fail2ban.service":
				m.startFail2ban()
			}
		case "show":
			state, startUS := "inactive", 0
			if arg(len(args)-1) == "fail2ban.service" && m.f2bUp {
				state, startUS = "active", int(m.f2bStart*1e6)
			}
			return []byte(fmt.Sprintf("ExecMainStartTimestampMonotonic=%d\nActiveState=%s\n", startUS, state)), nil
		}
		return nil, nil
	case "ssh-keygen":
		if arg(0) == "-l" { // -l -E sha256 -f PUB
			if arg(1) != "-E" || arg(2) != "sha256" || arg(3) != "-f" {
				m.t.Errorf("unexpected %q", line)
			}
			fp, ok := sshKeygenFingerprint(m.read(arg(4)))
			if !ok {
				return nil, &ExitError{Cmd: line, Code: 255, Stderr: arg(4) + " is not a public key file."}
			}
			return []byte("256 " + fp + " root@x (ED25519)\n"), nil
		}
		m.write(arg(6), "throwaway", 0o600)
		return nil, nil
	case "sha256sum":
		if arg(0) != "--" {
			m.t.Errorf("unexpected %q", line)
		}
		data, err := os.ReadFile(filepath.Join(m.root, arg(1)))
		if err != nil {
			return nil, &ExitError{Cmd: line, Code: 1, Stderr: "sha256sum: " + arg(1) + ": No such file or directory"}
		}
		sum := sha256.Sum256(data)
		return []byte(hex.EncodeToString(sum[:]) + "  " + args[1] + "\n"), nil
	case "sshd":
		if arg(0) == "-t" {
			if arg(1) == "-f" && strings.Contains(m.read(arg(2)), "Include") {
				inc := strings.TrimPrefix(strings.SplitN(m.read(arg(2)), "\n", 2)[0], "Include "+m.root)
				if strings.Contains(m.read(inc), "Bogus") {
					return nil, &ExitError{Cmd: line, Code: 255, Stderr: "Bad configuration option: Bogus"}
				}
			}
			return nil, nil
		}
		return []byte("port " + m.sshdPort() + "\npermitrootlogin " + m.dropInValue("PermitRootLogin", "without-password") +
			"\npasswordauthentication " + m.dropInValue("PasswordAuthentication", "yes") + "\nkbdinteractiveauthentication no\nmaxauthtries " +
			m.dropInValue("MaxAuthTries", "6") + "\nusepam " + map[bool]string{false: "yes", true: "no"}[m.noPAM] + "\n" + m.dropInLists()), nil
	case "runuser": // runuser -u USER -- sudo -n true
		if arg(0) != "-u" || arg(2) != "--" || strings.Join(args[3:], " ") != "sudo -n true" {
			m.t.Errorf("unexpected %q", line)
		}
		if !strings.Contains(m.read("/etc/passwd"), "\n"+arg(1)+":") {
			return nil, &ExitError{Cmd: line, Code: 1, Stderr: "runuser: user " + arg(1) + " does not exist or the user entry does not contain all the required fields"}
		}
		if m.sudoRule != "nopasswd" {
			return nil, &ExitError{Cmd: line, Code: 1, Stderr: "sudo: a password is required"}
		}
		return nil, nil
	case "sudo": // sudo -n -l -U USER
		if strings.Join(args[:3], " ") != "-n -l -U" {
			m.t.Errorf("unexpected %q", line)
		}
		out := "Matching Defaults entries for " + arg(3) + " on x:\n    env_reset\n\nUser " + arg(3) + " may run the following commands on x:\n"
		switch m.sudoRule {
		case "nopasswd":
			return []byte(out + "    (ALL) NOPASSWD: ALL\n"), nil
		case "password":
			return []byte(out + "    (ALL) ALL\n"), nil
		}
		return []byte("User " + arg(3) + " is not allowed to run sudo on x.\n"), nil
	case "usermod":
		m.write("/etc/shadow", strings.Replace(m.read("/etc/shadow"), "root:$", "root:!$", 1), 0o640)
		return nil, nil
	case "nft":
		switch {
		case arg(0) == "-c":
			return nil, nil
		case arg(0) == "-f":
			m.nftRules = m.read(arg(1))
			return nil, nil
		case arg(0) == "flush":
			m.nftRules = ""
			return nil, nil
		case arg(0) == "-j":
			return []byte(fakeNftJSON(m.nftRules)), nil
		}
	case "iptables-restore", "ip6tables-restore":
		if arg(0) == "--test" {
			return nil, nil
		}
		if name == "iptables-restore" {
			m.ipt4 = m.read(arg(0))
		} else {
			m.ipt6 = m.read(arg(0))
		}
		return nil, nil
	case "iptables":
		return []byte(fakeIptS(m.ipt4)), nil
	case "ip6tables":
		return []byte(fakeIptS(m.ipt6)), nil
	case "sysctl":
		if arg(0) == "-p" {
			for _, l := range strings.Split(m.read(arg(1)), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					m.sysctl[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			return nil, nil
		}
		// sysctl -n -- KEY...: one line per key; a missing key prints
		// nothing and fails the whole call.
		var out strings.Builder
		for _, k := range args[2:] {
			v, ok := m.sysctl[k]
			if !ok {
				return []byte(out.String()), &ExitError{Cmd: line, Code: 255, Stderr: "sysctl: cannot stat /proc/sys/" + strings.ReplaceAll(k, ".", "/") + ": No such file or directory"}
			}
			out.WriteString(v + "\n")
		}
		return []byte(out.String()), nil
	case "fail2ban-client":
		switch {
		case m.f2bRecorded != "" && (m.f2bUp || arg(0) == "-t"):
			return m.recordedF2B(line)
		case arg(0) == "-t":
			return nil, nil
		case !m.f2bUp:
			return nil, &ExitError{Cmd: line, Code: 255, Stderr: "Failed to access socket path"}
		case arg(0) == "ping":
			return []byte("Server replied: pong\n"), nil
		case arg(0) == "status":
			return []byte("Status for the jail: sshd\n"), nil
		case arg(0) == "get" && arg(1) == "recidive" && arg(2) == "actions":
			return []byte("The jail recidive has the following actions:\n" + m.f2bRecidiveAction + "\n"), nil
		case arg(0) == "get" && arg(2) == "action" && arg(4) == "type":
			// An alias keeps its type in its own file, not as a property.
			return []byte("'CommandAction' object has no attribute 'type'\n"), &ExitError{Cmd: line, Code: 255}
		case arg(0) == "get" && arg(1) == "recidive" && arg(2) == "action":
			return []byte("0:65535\n"), nil // fail2ban 1.0 and 1.1: jail.conf's [DEFAULT] port
		case arg(0) == "get" && arg(2) == "actions":
			return []byte("The jail sshd has the following actions:\nnftables-multiport\n"), nil
		case arg(0) == "get" && arg(2) == "action":
			return []byte(m.f2bPort + "\n"), nil
		}
	case "dpkg-query":
		if m.uuPkg {
			return []byte("install ok installed"), nil
		}
		return nil, &ExitError{Cmd: line, Code: 1, Stderr: "dpkg-query: no packages found matching unattended-upgrades"}
	case "apt-config":
		if m.uuPkg && strings.Contains(m.read("/etc/apt/apt.conf.d/20auto-upgrades"), `Unattended-Upgrade "1"`) {
			return []byte("APT \"\";\nAPT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n"), nil
		}
		return []byte("APT \"\";\n"), nil
	}
	return nil, nil
}

// recordedF2B answers a fail2ban-client command from m.f2bRecorded: its
// commands.txt lines are "<exit code> <name> <command line>", <name>.txt the
// stdout and <name>.stderr (if any) the stderr. A command nobody recorded
// fails the test: the agent asked something the recordings do not prove.
func (m *fakeMachine) recordedF2B(line string) ([]byte, error) {
	// Errorf, not Fatal: the agent may run commands off the test goroutine.
	index, err := os.ReadFile(filepath.Join(m.f2bRecorded, "commands.txt"))
	if err != nil {
		m.t.Errorf("recorded fail2ban: %v", err)
		return nil, err
	}
	for _, l := range strings.Split(string(index), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 || f[2] != line {
			continue
		}
		stdout, err := os.ReadFile(filepath.Join(m.f2bRecorded, f[1]+".txt"))
		if err != nil {
			m.t.Errorf("recorded fail2ban: %v", err)
			return nil, err
		}
		stderr, _ := os.ReadFile(filepath.Join(m.f2bRecorded, f[1]+".stderr"))
		if f[0] != "0" {
			code := 0
			fmt.Sscan(f[0], &code)
			return stdout, &ExitError{Cmd: line, Code: code, Stderr: string(stderr)}
		}
		return stdout, nil
	}
	m.t.Errorf("%s: %q was not recorded", m.f2bRecorded, line)
	return nil, &ExitError{Cmd: line, Code: 1, Stderr: "not recorded"}
}

// startFail2ban starts the daemon from the jail.local on disk, now.
func (m *fakeMachine) startFail2ban() {
	m.f2bUp, m.f2bStart = true, m.uptime
	if mm := regexp.MustCompile(`(?m)^port\s*=\s*(\S+)`).FindStringSubmatch(m.read("/etc/fail2ban/jail.local")); mm != nil {
		m.f2bPort = mm[1]
	}
}

func (m *fakeMachine) exists(p string) bool {
	_, err := os.Stat(filepath.Join(m.root, p))
	return err == nil
}

func (m *fakeMachine) dropInValue(key, def string) string {
	re := regexp.MustCompile(`(?m)^` + key + ` (\S+)`)
	if mm := re.FindStringSubmatch(m.read("/etc/ssh/sshd_config.d/10-hardbake.conf")); mm != nil {
		return strings.ToLower(mm[1])
	}
	return def
}

// dropInLists prints the drop-in's AllowUsers/AllowGroups/DenyUsers/
// DenyGroups as sshd -T does: one "keyword value" line per entry.
func (m *fakeMachine) dropInLists() string {
	var b strings.Builder
	for _, l := range strings.Split(m.read("/etc/ssh/sshd_config.d/10-hardbake.conf"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && slices.Contains([]string{"allowusers", "allowgroups", "denyusers", "denygroups"}, strings.ToLower(f[0])) {
			for _, v := range f[1:] {
				b.WriteString(strings.ToLower(f[0]) + " " + v + "\n")
			}
		}
	}
	return b.String()
}

var acceptLine = regexp.MustCompile(`(tcp|udp) dport (\d+) accept`)

// fakeNftJSON renders what `nft -j list ruleset` prints for a loaded file:
// an inet table with an input chain whose policy and accept rules come
// from the file's text.
func fakeNftJSON(rules string) string {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}`
	if rules == "" {
		return out + "]}"
	}
	policy := "accept"
	if strings.Contains(rules, "policy drop") {
		policy = "drop"
	}
	out += `, {"table": {"family": "inet", "name": "hardbake", "handle": 1}}, {"chain": {"family": "inet", "table": "hardbake", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "` + policy + `"}}`
	for i, mm := range acceptLine.FindAllStringSubmatch(rules, -1) {
		out += fmt.Sprintf(`, {"rule": {"family": "inet", "table": "hardbake", "chain": "input", "handle": %d, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": %q, "field": "dport"}}, "right": %s}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}`, i+4, mm[1], mm[2])
	}
	return out + "]}"
}

// fakeIptS turns an iptables-restore file into `iptables -S` output.
func fakeIptS(rules string) string {
	if rules == "" {
		return "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
	}
	var b strings.Builder
	for _, l := range strings.Split(rules, "\n") {
		switch {
		case strings.HasPrefix(l, ":"):
			f := strings.Fields(l[1:])
			fmt.Fprintf(&b, "-P %s %s\n", f[0], f[1])
		case strings.HasPrefix(l, "-A"):
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// sshKeygenFingerprint is what `ssh-keygen -l -E sha256` prints for a
// public key line: SHA256 of the decoded blob, base64 without padding.
func sshKeygenFingerprint(pub string) (string, bool) {
	f := strings.Fields(pub)
	if len(f) < 2 {
		return "", false
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", false
	}
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), true
}

// testPlan is a complete plan moving SSH to 50022.
func testPlan() *plan.Plan {
	return &plan.Plan{
		Version: 1, Profile: "test", InstanceID: "i-1",
		SSH: plan.SSH{
			Port: 50022,
			DropIn: plan.File{Path: "/etc/ssh/sshd_config.d/10-hardbake.conf", Mode: 0o600, Owner: "root:root",
				Content: "Port 50022\nPermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxAuthTries 3\n"},
			SocketDropIn: plan.File{Path: "/etc/systemd/system/ssh.socket.d/10-hardbake.conf", Mode: 0o644, Owner: "root:root",
				Content: "[Socket]\nListenStream=\nListenStream=50022\n"},
			Expect: map[string]string{"port": "50022", "permitrootlogin": "no", "passwordauthentication": "no", "maxauthtries": "3"},
		},
		Accounts: plan.Accounts{Admin: "admin", LockRootPassword: true},
		Firewall: &plan.Firewall{
			Backend: "auto",
			Nftables: plan.File{Path: "/etc/nftables.conf", Mode: 0o755, Owner: "root:root",
				Content: "#!/usr/sbin/nft -f\nflush ruleset\ntable inet hardbake {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 50022 accept\n  tcp dport 443 accept\n }\n}\n"},
			IPTablesV4: plan.File{Path: "/etc/iptables/rules.v4", Mode: 0o644,
				Content: "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 50022 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n"},
			IPTablesV6: plan.File{Path: "/etc/iptables/rules.v6", Mode: 0o644,
				Content: "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m multiport --dports 50022,443 -j ACCEPT\nCOMMIT\n"},
			IPTablesUnit: plan.File{Path: "/etc/systemd/system/hardbake-iptables.service", Mode: 0o644, Content: "[Unit]\n"},
			Allow:        []plan.Port{{Port: 50022, Proto: "tcp"}, {Port: 443, Proto: "tcp"}},
		},
		Fail2ban: &plan.Fail2ban{
			JailLocal: plan.File{Path: "/etc/fail2ban/jail.local", Mode: 0o644, Content: "[DEFAULT]\nbantime = 1h\n[sshd]\nenabled = true\nport = 50022\nbackend = systemd\n"},
			Jails:     map[string]string{"sshd": "50022"},
		},
		Updates: &plan.Updates{
			Files:      []plan.File{{Path: "/etc/apt/apt.conf.d/20auto-upgrades", Mode: 0o644, Content: "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n"}},
			Unattended: true,
		},
		Sysctl: &plan.Sysctl{
			File:   plan.File{Path: "/etc/sysctl.d/90-hardbake.conf", Mode: 0o644, Content: "net.ipv4.tcp_syncookies = 1\n"},
			Expect: map[string]string{"net.ipv4.tcp_syncookies": "1"},
		},
	}
}

// install writes p as the machine's plan and returns its digest.
func (m *fakeMachine) install(p *plan.Plan) string {
	data, err := render.EncodePlan(p)
	if err != nil {
		m.t.Fatal(err)
	}
	m.write(plan.PlanPath, string(data), 0o600)
	return render.PlanDigest(data)
}

// apply runs a stage and returns the exit code, report and summary line.
func (m *fakeMachine) apply(stage string, force bool) (int, *plan.Report, string) {
	m.t.Helper()
	a := m.agent()
	code, err := a.Run(Options{Stage: stage, PlanPath: plan.PlanPath, Force: force})
	if err != nil {
		m.t.Logf("run %s: %v", stage, err)
	}
	return code, m.report(), a.Out.(*strings.Builder).String()
}

func statMode(p string) (os.FileMode, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}
