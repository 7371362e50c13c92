package store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// ClusterTLS is the mutual-TLS setup between dqlite nodes: Listen for the
// connections a node accepts, Dial for the ones it makes (including its own
// SQL connections to the leader).
type ClusterTLS struct {
	Listen *tls.Config
	Dial   *tls.Config
}

// LoadClusterTLS builds a ClusterTLS from one certificate and key shared by
// every node of the cluster: the certificate is its own CA, so a peer
// without this exact certificate cannot connect in either direction.
//
// It builds the tls.Configs itself instead of calling go-dqlite's
// app.SimpleTLSConfig: that helper panics on a certificate without a DNS
// name, pins curve preferences and shares a client session cache, which is
// reported to break with "tls: bad record MAC" on newer Go
// (canonical/go-dqlite#224, fixed only in a release Debian 12's libdqlite
// cannot build).
func LoadClusterTLS(certFile, keyFile string) (*ClusterTLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return NewClusterTLS(cert)
}

// NewClusterTLS is LoadClusterTLS for a certificate already in memory.
func NewClusterTLS(cert tls.Certificate) (*ClusterTLS, error) {
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("cluster certificate: empty chain")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cluster certificate: %w", err)
	}
	if len(leaf.DNSNames) == 0 {
		// Nodes verify each other by this name, not by address, since
		// they share one certificate.
		return nil, fmt.Errorf("cluster certificate %q has no DNS name (subjectAltName); dqlite's TLS needs one", leaf.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	listen := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	dial := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   leaf.DNSNames[0],
	}
	return &ClusterTLS{Listen: listen, Dial: dial}, nil
}
