//go:build cgo && libsqlite3

package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertCmd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var out, errb bytes.Buffer
	if err := certCmd([]string{"--out", dir, "--dns-name", "db.example"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	for name, mode := range map[string]os.FileMode{clusterCertName: 0o644, clusterKeyName: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %04o", name, st.Mode(), err, mode)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, clusterCertName))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "db.example" || cert.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("certificate: CA %v, DNS %v, until %s", cert.IsCA, cert.DNSNames, cert.NotAfter)
	}
	// A second run must not replace the pair every node holds.
	before, _ := os.ReadFile(filepath.Join(dir, clusterKeyName))
	err = certCmd([]string{"--out", dir}, &out, &errb)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second cert run: %v, want a usage error", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, clusterKeyName)); !bytes.Equal(before, after) {
		t.Fatal("the key was replaced")
	}
	for _, args := range [][]string{{}, {"--out", dir, "--days", "0"}, {"--out", dir, "--dns-name", ""}, {"--out", dir, "extra"}} {
		if err := certCmd(args, &out, &errb); !errors.As(err, &ue) {
			t.Errorf("cert %v: %v, want a usage error", args, err)
		}
	}
}

// TestClusterFlags: the combinations serve accepts, and the ones it
// refuses before anything is written (exit 2), the forgotten --join first.
func TestClusterFlags(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := certCmd([]string{"--out", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, clusterCertName), filepath.Join(dir, clusterKeyName)
	tests := []struct {
		name    string
		f       clusterFlags
		hasNode bool
		secret  bool
		want    string // substring of the usage error; "" = accepted
		refuse  bool   // RefuseBootstrap when accepted
	}{
		{name: "single node", f: clusterFlags{}},
		{name: "first node", f: clusterFlags{certFile: crt, keyFile: key, bootstrap: true}},
		{name: "joining node", f: clusterFlags{certFile: crt, keyFile: key, join: []string{"127.0.0.1:9001"}}, secret: true, refuse: true},
		{name: "restart, flags as on the first start", f: clusterFlags{certFile: crt, keyFile: key, join: []string{"127.0.0.1:9001"}}, hasNode: true, refuse: true},
		{name: "restart without join", f: clusterFlags{certFile: crt, keyFile: key}, hasNode: true, refuse: true},
		{name: "forgotten join", f: clusterFlags{certFile: crt, keyFile: key}, want: "--bootstrap"},
		{name: "join without certificate", f: clusterFlags{join: []string{"127.0.0.1:9001"}}, secret: true, want: "--cluster-cert"},
		{name: "join without secret", f: clusterFlags{certFile: crt, keyFile: key, join: []string{"127.0.0.1:9001"}}, want: "--secret-file"},
		{name: "join and bootstrap", f: clusterFlags{certFile: crt, keyFile: key, join: []string{"127.0.0.1:9001"}, bootstrap: true}, secret: true, want: "exclude"},
		{name: "bad join address", f: clusterFlags{certFile: crt, keyFile: key, join: []string{"no-port"}}, secret: true, want: "--join"},
		{name: "cert without key", f: clusterFlags{certFile: crt}, want: "go together"},
		{name: "tls cert without key", f: clusterFlags{httpCert: crt}, want: "go together"},
		{name: "https API", f: clusterFlags{httpCert: crt, httpKey: key}},
		{name: "https API, key is not a key", f: clusterFlags{httpCert: crt, httpKey: crt}, want: "--tls-cert"},
		{name: "key is not a key", f: clusterFlags{certFile: crt, keyFile: crt, bootstrap: true}, want: "--cluster-cert"},
		{name: "latency too small", f: clusterFlags{networkLatency: time.Microsecond}, want: "--network-latency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			if f.networkLatency == 0 {
				f.networkLatency = defaultNetworkLatency
			}
			err := f.resolve(tt.hasNode, tt.secret)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.refuseBootstrapping != tt.refuse || (f.certFile != "") != (f.clusterTLS != nil) {
					t.Fatalf("refuse %v (want %v), TLS %v", f.refuseBootstrapping, tt.refuse, f.clusterTLS != nil)
				}
				return
			}
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a usage error naming %q", err, tt.want)
			}
		})
	}
}
