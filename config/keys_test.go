package config_test

import (
	"crypto/dsa" //nolint:staticcheck // DSA keys are built only to check they are refused.
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Test keys are generated once per test binary, never read from disk.
type testKeys struct {
	ed25519, ed25519b, ecdsa, rsa2048, rsa1024, dsa, cert string
}

var (
	keysOnce sync.Once
	keys     testKeys
	keysErr  error
)

func authorizedLine(pub any) (string, error) {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), nil
}

func genKeys() (testKeys, error) {
	var k testKeys
	var err error
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return k, err
	}
	if k.ed25519, err = authorizedLine(edPub); err != nil {
		return k, err
	}
	edPub2, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return k, err
	}
	if k.ed25519b, err = authorizedLine(edPub2); err != nil {
		return k, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return k, err
	}
	if k.ecdsa, err = authorizedLine(&ec.PublicKey); err != nil {
		return k, err
	}
	for _, c := range []struct {
		bits int
		out  *string
	}{{2048, &k.rsa2048}, {1024, &k.rsa1024}} {
		r, err := rsa.GenerateKey(rand.Reader, c.bits)
		if err != nil {
			return k, err
		}
		if *c.out, err = authorizedLine(&r.PublicKey); err != nil {
			return k, err
		}
	}
	var params dsa.Parameters
	if err := dsa.GenerateParameters(&params, rand.Reader, dsa.L1024N160); err != nil {
		return k, err
	}
	priv := dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: params}}
	if err := dsa.GenerateKey(&priv, rand.Reader); err != nil {
		return k, err
	}
	// x/crypto/ssh no longer marshals DSA keys: write the ssh-dss wire
	// format (RFC 4253 6.6) by hand.
	wire := ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{ssh.KeyAlgoDSA, params.P, params.Q, params.G, priv.Y})
	k.dsa = ssh.KeyAlgoDSA + " " + base64.StdEncoding.EncodeToString(wire)
	// A user certificate for edPub2, signed by the first key.
	signer, err := ssh.NewSignerFromKey(edPriv)
	if err != nil {
		return k, err
	}
	certKey, err := ssh.NewPublicKey(edPub2)
	if err != nil {
		return k, err
	}
	cert := &ssh.Certificate{Key: certKey, CertType: ssh.UserCert, KeyId: "test",
		ValidPrincipals: []string{"admin"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return k, err
	}
	k.cert = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	return k, nil
}

func getKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() { keys, keysErr = genKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}
