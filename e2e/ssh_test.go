//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshKey is a throwaway client key.
type sshKey struct {
	Signer     ssh.Signer
	Authorized string // authorized_keys line
}

func newSSHKey(comment string) (*sshKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh signer: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment
	return &sshKey{Signer: signer, Authorized: line}, nil
}

// sshResult is one SSH connection attempt.
type sshResult struct {
	Client  *ssh.Client
	HostKey ssh.PublicKey
	// Offered collects the methods the client was asked for by the server
	// (a method's callback only runs when the server offers it).
	Offered []string
}

// sshConnect dials addr and authenticates as user with the given methods.
func sshConnect(addr, user string, timeout time.Duration, auth ...ssh.AuthMethod) (*sshResult, error) {
	res := &sshResult{}
	var mu sync.Mutex
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			mu.Lock()
			res.HostKey = key
			mu.Unlock()
			return nil
		},
		Timeout: timeout,
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return res, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return res, fmt.Errorf("ssh %s@%s: %w", user, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	res.Client = ssh.NewClient(c, chans, reqs)
	return res, nil
}

// sshLogin logs in with a key, retrying until the deadline (sshd may still
// be coming up).
func sshLogin(ctx context.Context, addr, user string, key *sshKey, within time.Duration) (*sshResult, error) {
	deadline := time.Now().Add(within)
	var last error
	for {
		res, err := sshConnect(addr, user, 20*time.Second, ssh.PublicKeys(key.Signer))
		if err == nil {
			return res, nil
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no key login as %s on %s within %s: %w", user, addr, within, last)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("key login: %w (last: %v)", ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

// sshRun runs a command in a new session and returns stdout, stderr.
func sshRun(c *ssh.Client, cmd string, timeout time.Duration) (string, string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", "", fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout = &stdout
	s.Stderr = &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	short, _, _ := strings.Cut(cmd, "\n")
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), stderr.String(), fmt.Errorf("run %q: %w (stderr: %s)", short, err, strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), stderr.String(), nil
	case <-time.After(timeout):
		_ = s.Signal(ssh.SIGKILL)
		return stdout.String(), stderr.String(), fmt.Errorf("run %q: timed out after %s", short, timeout)
	}
}

// authMethodsOffered connects as user and offers password and
// keyboard-interactive only: it returns the methods whose callbacks the
// server asked for. Nothing is ever sent as a password.
func authMethodsOffered(addr, user string) ([]string, error) {
	var mu sync.Mutex
	var offered []string
	note := func(m string) {
		mu.Lock()
		offered = append(offered, m)
		mu.Unlock()
	}
	res, err := sshConnect(addr, user, 20*time.Second,
		ssh.PasswordCallback(func() (string, error) {
			note("password")
			return "", errors.New("e2e: no password is ever sent")
		}),
		ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			note("keyboard-interactive")
			return nil, errors.New("e2e: no answers are ever sent")
		}),
	)
	if err == nil {
		res.Client.Close()
		return offered, fmt.Errorf("login as %s without credentials succeeded", user)
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		return offered, fmt.Errorf("probe auth methods: %w", err)
	}
	return offered, nil
}
