//go:build cgo && libsqlite3

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/store"
)

// Cluster certificate file names inside --out; serve's --cluster-cert and
// --cluster-key point at them.
const (
	clusterCertName = "cluster.crt"
	clusterKeyName  = "cluster.key"
	// clusterDNSName is the name every node presents and verifies: the
	// nodes share one certificate, so they check each other by this name
	// and by the certificate itself, not by IP address.
	clusterDNSName = "hardbaked"
)

// certCmd makes the cluster's certificate and key: one self-signed
// certificate shared by every node, which is at once the cluster's CA, so
// a node (or client) holding any other certificate is refused in both
// directions.
func certCmd(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("cert", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "`DIR` to write "+clusterCertName+" and "+clusterKeyName+" into (created 0700)")
	name := fs.String("dns-name", clusterDNSName, "DNS `NAME` in the certificate (dqlite's TLS needs one; any name, the same on every node)")
	days := fs.Int("days", 3650, "validity in days")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usagef("cert: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("cert: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("cert: --out is required")
	}
	if *days < 1 || *days > 36500 {
		return usagef("cert: --days: %d is not between 1 and 36500", *days)
	}
	if *name == "" {
		return usagef("cert: --dns-name must not be empty")
	}
	certPath, keyPath := filepath.Join(*out, clusterCertName), filepath.Join(*out, clusterKeyName)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return usagef("cert: %s exists; a new certificate would lock every node holding the old one out (remove it first to really replace it)", p)
		}
	}
	certPEM, keyPEM, err := newClusterCert(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	// Prove the pair is what serve will accept before anyone copies it.
	if _, err := store.LoadClusterTLS(certPath, keyPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (DNS name %q); copy both to every node, the key stays secret\n", certPath, keyPath, *name)
	return nil
}

func newClusterCert(name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"hardbaked cluster"}},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between hosts
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeNew creates path with mode, failing if it exists.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cert: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("cert: close %s: %w", path, err)
	}
	return nil
}
