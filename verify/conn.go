package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// recordLimit bounds what a connection records of the server's first
// bytes: the identification line and the KEXINIT fit in a few KiB.
const recordLimit = 64 << 10

// recordingConn keeps a copy of the first bytes the server sends, so the
// login's own handshake shows the offer: one connection, not several,
// because fail2ban counts every connection closed before login.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if room := recordLimit - c.buf.Len(); room > 0 && n > 0 {
		c.buf.Write(p[:min(n, room)])
	}
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) recorded() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// Session is one SSH connection attempt and what it revealed.
type Session struct {
	Client  *ssh.Client   // nil unless the login succeeded
	HostKey ssh.PublicKey // the key the server proved, if the handshake got that far
	Banner  string        // the server's identification line
	Offer   *Offer        // the server's KEXINIT, if it was read
	// Offered lists the interactive methods (password,
	// keyboard-interactive) the server asked the client for: their
	// callbacks only run when the server lists them after "none".
	Offered []string
}

// Close closes the client, if any.
func (s *Session) Close() {
	if s != nil && s.Client != nil {
		s.Client.Close()
	}
}

// errProbeOnly aborts a login at the first interactive method the server
// offers: no password or answer is ever sent.
var errProbeOnly = errors.New("hardbake verify sends no password")

// Connect dials addr and logs in as user with signer (nil: offer no key).
// The password and keyboard-interactive methods are configured too, before
// the key, only to notice whether the server offers them: their callbacks
// record the method and abort without sending anything.
func Connect(ctx context.Context, addr, user string, signer ssh.Signer, timeout time.Duration) (*Session, error) {
	return connect(ctx, addr, user, signer, timeout, true)
}

// ConnectKey logs in with the key alone.
func ConnectKey(ctx context.Context, addr, user string, signer ssh.Signer, timeout time.Duration) (*Session, error) {
	return connect(ctx, addr, user, signer, timeout, false)
}

func connect(ctx context.Context, addr, user string, signer ssh.Signer, timeout time.Duration, probe bool) (*Session, error) {
	s := &Session{}
	var mu sync.Mutex
	note := func(m string) {
		mu.Lock()
		s.Offered = append(s.Offered, m)
		mu.Unlock()
	}
	var auth []ssh.AuthMethod
	if probe {
		auth = append(auth, ssh.PasswordCallback(func() (string, error) { note("password"); return "", errProbeOnly }),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
				note("keyboard-interactive")
				return nil, errProbeOnly
			}))
	}
	if signer != nil {
		auth = append(auth, ssh.PublicKeys(signer))
	}
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			mu.Lock()
			s.HostKey = key
			mu.Unlock()
			return nil
		},
		// Modern keys first, but every type x/crypto knows: a weak server
		// must still be reachable to be judged.
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
			ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA},
		ClientVersion: "SSH-2.0-hardbake_verify",
		Timeout:       timeout,
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return s, fmt.Errorf("dial %s: %w", addr, err)
	}
	conn := &recordingConn{Conn: raw}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	s.Banner, s.Offer = parseRecorded(conn.recorded())
	if err != nil {
		conn.Close()
		return s, fmt.Errorf("ssh %s@%s: %w", user, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s.Client = ssh.NewClient(c, chans, reqs)
	return s, nil
}

// parseRecorded reads the identification line and the KEXINIT from the
// first bytes of a connection; what is missing stays empty.
func parseRecorded(b []byte) (string, *Offer) {
	br := bufio.NewReader(bytes.NewReader(b))
	banner, err := readBanner(br)
	if err != nil {
		return "", nil
	}
	payload, err := readPacket(br)
	if err != nil {
		return banner, nil
	}
	o, err := ParseKexInit(payload)
	if err != nil {
		return banner, nil
	}
	o.Banner = banner
	return banner, o
}

// IsAuthFailure reports whether err is the server refusing the login (as
// opposed to a network or protocol failure).
func IsAuthFailure(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

// Banner dials addr and returns the SSH identification line if one comes
// back within the timeout. Behind QEMU's hostfwd the host side always
// accepts the connection: only a banner proves that sshd answered.
func Banner(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	line, err := readBanner(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("no SSH banner from %s: %w", addr, err)
	}
	return line, nil
}

// Exec runs cmd in a new session on c and returns stdout; stderr goes into
// the error.
func Exec(ctx context.Context, c *ssh.Client, cmd string, timeout time.Duration) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	short, _, _ := strings.Cut(cmd, "\n")
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("%q: %w (stderr: %s)", short, err, strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), nil
	case <-t.C:
		_ = s.Signal(ssh.SIGKILL)
		return stdout.String(), fmt.Errorf("%q: timed out after %s", short, timeout)
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		return stdout.String(), fmt.Errorf("%q: %w", short, ctx.Err())
	}
}

// NewKeyFile makes a throwaway ed25519 key and writes its private half to
// path (mode 0600, OpenSSH format) for `hardbake verify --identity`; it
// returns the signer and the authorized_keys line.
func NewKeyFile(path, comment string) (ssh.Signer, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, "", fmt.Errorf("encode private key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", fmt.Errorf("write private key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("ssh signer: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if comment != "" {
		line += " " + comment
	}
	return signer, line, nil
}

// NewKey makes a throwaway ed25519 key; it returns the signer and the
// authorized_keys line with the comment.
func NewKey(comment string) (ssh.Signer, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("ssh signer: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if comment != "" {
		line += " " + comment
	}
	return signer, line, nil
}
