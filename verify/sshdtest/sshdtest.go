// Package sshdtest starts a real OpenSSH server on 127.0.0.1 for tests,
// with host keys made for the test and a key that logs in as root.
package sshdtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/internal/testtool"
)

// Server is a real OpenSSH server started by a test on 127.0.0.1.
type Server struct {
	Addr    string
	Port    int
	HostFP  string // ed25519 host key fingerprint
	Client  ssh.Signer
	dir     string
	logPath string
	// Version is the identification line sshd sent.
	Version string
}

func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSSHD starts sshd with host keys made for the test and config
// appended to a base that lets the test's key log in as root. Root is the
// only account with a shell every machine has; the key's authorized_keys
// line puts a directory first in PATH whose `sudo` runs its arguments, so
// `sudo -n true` means what it means for an admin.
func Start(t *testing.T, config string) *Server {
	t.Helper()
	sshd := testtool.Require(t, "sshd")
	keygen := testtool.Require(t, "ssh-keygen")
	if os.Geteuid() != 0 {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatal("the sshd tests log in as root through a real sshd: run them as root")
		}
		t.Skip("the sshd tests need root")
	}
	// sshd's privilege separation directory; Debian creates it at boot.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} { // ecdsa only where config names %DIR%/host_ecdsa
		out, err := exec.Command(keygen, "-q", "-t", typ, "-N", "", "-f", filepath.Join(dir, "host_"+typ)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\n[ \"$1\" = -n ] && shift\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " sshdtest"
	// HOME too: root's own shell start-up files are not the test's (and
	// can be slow).
	auth := fmt.Sprintf("environment=\"PATH=%s:/usr/sbin:/usr/bin:/sbin:/bin\",environment=\"HOME=%s\" %s\n", bin, dir, line)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(auth), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	// Crypto and auth settings come first: sshd keeps the first value.
	cfg := strings.ReplaceAll(config, "%DIR%", dir) + fmt.Sprintf(`
Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
HostKey %s/host_rsa
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
PermitUserEnvironment yes
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
`, port, dir, dir, dir, dir)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshd, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v: %s\n%s", err, out, cfg)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Client: signer, dir: dir}
	// The log goes to a file, not a pipe: session processes inherit it and
	// may outlive sshd, and a pipe would hold up Wait until they end.
	s.logPath = filepath.Join(dir, "sshd.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: the cleanup ends sshd and its per-connection
	// children by the group of the PID it started, nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	pub, err := os.ReadFile(filepath.Join(dir, "host_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s.HostFP = ssh.FingerprintSHA256(hk)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := banner(s.Addr)
		if err == nil {
			s.Version = b
			return s
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited: %s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not answering on %s: %v\n%s", s.Addr, err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dir is the server's directory (host keys, config, log).
func (s *Server) Dir() string { return s.dir }

func banner(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "SSH-") {
		return "", fmt.Errorf("no banner (%q): %v", line, err)
	}
	return strings.TrimSpace(line), nil
}
