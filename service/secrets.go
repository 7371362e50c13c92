package service

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Secrets derives every per-order secret from one service secret, kept in a
// file outside the database (DATA/secret, or --secret-file; the nodes of a
// cluster share it like their certificate).
//
// Why derived, not random per order: cloud-init cannot send a header, so the
// NoCloud-Net token sits in the URL, and the database keeps only its hash.
// A client whose POST timed out must get the same order, URL included,
// when it retries; with a random token stored hashed there would be nothing
// to answer with. HMAC(secret, order id) gives the same token again while a
// copy of the database alone still reveals neither tokens nor report keys.
type Secrets struct {
	key []byte
}

// SecretSize is the size of the service secret in bytes.
const SecretSize = 32

// NewSecrets wraps a service secret of SecretSize bytes.
func NewSecrets(key []byte) (*Secrets, error) {
	if len(key) != SecretSize {
		return nil, fmt.Errorf("service secret is %d bytes, want %d", len(key), SecretSize)
	}
	return &Secrets{key: append([]byte(nil), key...)}, nil
}

// LoadOrCreateSecret reads the secret file (64 hex digits), creating it
// with a fresh random secret (mode 0600) when it does not exist.
func LoadOrCreateSecret(path string) (*Secrets, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, SecretSize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate service secret: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create service secret: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		serr := f.Sync()
		if cerr := f.Close(); werr == nil && serr == nil {
			werr = cerr
		} else if werr == nil {
			werr = serr
		}
		if werr != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("write service secret %s: %w", path, werr)
		}
		return NewSecrets(key)
	}
	if err != nil {
		return nil, fmt.Errorf("read service secret: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat service secret: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("service secret %s: mode %04o lets others read it; chmod 600", path, st.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != SecretSize {
		return nil, fmt.Errorf("service secret %s: want %d hex digits", path, 2*SecretSize)
	}
	return NewSecrets(key)
}

func (s *Secrets) derive(purpose, orderID string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("hardbaked\x00" + purpose + "\x00" + orderID))
	return m.Sum(nil)
}

// Token is the order's NoCloud-Net path secret: 43 URL-safe characters.
func (s *Secrets) Token(orderID string) string {
	return base64.RawURLEncoding.EncodeToString(s.derive("nocloud-token", orderID))
}

// ReportKey is the order's report-signing key.
func (s *Secrets) ReportKey(orderID string) []byte { return s.derive("report-key", orderID) }

// TokenHash is what the database stores for a token.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
