//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"hardbake.dev/hardbake/verify"
)

// sshKey is a throwaway client key.
type sshKey struct {
	Signer     ssh.Signer
	Authorized string // authorized_keys line
	File       string // the private key, for bin/hardbake verify --identity
}

// newSSHKey makes a key and keeps its private half in file.
func newSSHKey(file, comment string) (*sshKey, error) {
	signer, line, err := verify.NewKeyFile(file, comment)
	if err != nil {
		return nil, err
	}
	return &sshKey{Signer: signer, Authorized: line, File: file}, nil
}

// sshLogin logs in with a key, retrying until the deadline (sshd may still
// be coming up). The checks themselves live in package verify.
func sshLogin(ctx context.Context, addr, user string, key *sshKey, within time.Duration) (*verify.Session, error) {
	deadline := time.Now().Add(within)
	var last error
	for {
		s, err := verify.ConnectKey(ctx, addr, user, key.Signer, 20*time.Second)
		if err == nil {
			return s, nil
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
