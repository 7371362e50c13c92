package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert makes a self-signed cluster certificate; dnsName "" leaves the
// DNS subjectAltName out.
func testCert(t testing.TB, dnsName string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hardbaked cluster"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if dnsName != "" {
		tmpl.DNSNames = []string{dnsName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writeCert(t testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cluster.crt"), filepath.Join(dir, "cluster.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

func TestLoadClusterTLS(t *testing.T) {
	certFile, keyFile := writeCert(t, testCert(t, "hardbaked"))
	c, err := LoadClusterTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.ClientAuth != tls.RequireAndVerifyClientCert || c.Listen.MinVersion != tls.VersionTLS12 ||
		c.Dial.ServerName != "hardbaked" || c.Dial.ClientSessionCache != nil || c.Dial.RootCAs == nil || c.Listen.ClientCAs == nil {
		t.Fatalf("configs: listen %+v dial %+v", c.Listen, c.Dial)
	}

	noDNS, noDNSKey := writeCert(t, testCert(t, ""))
	if _, err := LoadClusterTLS(noDNS, noDNSKey); err == nil || !strings.Contains(err.Error(), "no DNS name") {
		t.Fatalf("certificate without DNS name: %v", err)
	}
	if _, err := LoadClusterTLS(filepath.Join(t.TempDir(), "missing.crt"), keyFile); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("missing file: %v", err)
	}
}
