//go:build cgo && libsqlite3

package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalAddress runs two single nodes on local (abstract unix socket)
// addresses at once, reads an order larger than one response buffer from
// each, and restarts one: the address is the recorded one, whatever the
// path the directory is reached by.
func TestLocalAddress(t *testing.T) {
	ctx := ctxT(t)
	base := t.TempDir()
	dirA, dirB := filepath.Join(base, "a"), filepath.Join(base, "b")
	addrA, err := LocalAddress(dirA)
	if err != nil {
		t.Fatal(err)
	}
	addrB, _ := LocalAddress(dirB)
	if again, _ := LocalAddress(dirA + "/."); again != addrA {
		t.Fatalf("LocalAddress not stable: %s, %s", addrA, again)
	}
	if addrA == addrB || !IsLocalAddress(addrA) || !strings.HasPrefix(addrA, "@hardbaked-") {
		t.Fatalf("addresses %q %q", addrA, addrB)
	}
	a := openStore(t, Config{Dir: dirA, Address: addrA})
	b := openStore(t, Config{Dir: dirB, Address: addrB})
	var ids []string
	for i, s := range []*Store{a, b} {
		if s.Address() != []string{addrA, addrB}[i] || s.StartKind() != StartBootstrap {
			t.Fatalf("node %d: %s %s", i, s.Address(), s.StartKind())
		}
		p := mustPutProfile(t, s, "web", "a: 1\n")
		n := newOrder(p, "big", "h")
		n.UserData = []byte(strings.Repeat("u", 70000))
		ids = append(ids, mustCreate(t, s, n).ID)
		o, err := s.GetOrder(ctx, ids[i])
		if err != nil || len(o.UserData) != 70000 {
			t.Fatalf("node %d: read back %d bytes, %v", i, len(o.UserData), err)
		}
		if r, err := s.Role(ctx); err != nil || !r.Leader || r.LeaderAddress != s.Address() {
			t.Fatalf("node %d role: %+v %v", i, r, err)
		}
	}
	// Only the recorded address counts on a restart, also through a
	// symlink (systemd's DynamicUser reaches /var/lib/private/X that way).
	closeStore(t, a)
	link := filepath.Join(base, "link")
	if err := os.Symlink(dirA, link); err != nil {
		t.Fatal(err)
	}
	a2 := openStore(t, Config{Dir: link})
	if a2.Address() != addrA || a2.StartKind() != StartRestart {
		t.Fatalf("restart: %s %s", a2.Address(), a2.StartKind())
	}
	if _, err := a2.GetOrder(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	closeStore(t, a2)
	// The same directory with another address is refused.
	if s, err := Open(ctx, Config{Dir: dirA, Address: addrB}); err == nil {
		closeStore(t, s)
		t.Fatal("restart with another local address succeeded")
	}
}

// TestLocalAddressRefused: a local address is for a node outside any
// cluster, so it is refused with cluster TLS, for a joining node, and when
// the name is unusable; a node created on one refuses cluster TLS later.
func TestLocalAddressRefused(t *testing.T) {
	ctx := ctxT(t)
	ct, err := NewClusterTLS(testCert(t, "hardbaked"))
	if err != nil {
		t.Fatal(err)
	}
	long := "@" + strings.Repeat("x", maxUnixName)
	for name, cfg := range map[string]Config{
		"tls":        {Address: "@hardbaked-tls", TLS: ct},
		"join":       {Address: "@hardbaked-join", Join: []string{freeAddr(t)}},
		"empty name": {Address: "@"},
		"too long":   {Address: long},
	} {
		cfg.Dir = t.TempDir()
		if s, err := Open(ctx, cfg); !errors.Is(err, ErrInvalid) {
			if s != nil {
				closeStore(t, s)
			}
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	dir := t.TempDir()
	addr, _ := LocalAddress(dir)
	closeStore(t, openStore(t, Config{Dir: dir, Address: addr}))
	_, err = Open(ctx, Config{Dir: dir, TLS: ct})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("restart of a local node with TLS: %v", err)
	}
	// Still a good single node afterwards.
	closeStore(t, openStore(t, Config{Dir: dir}))
}

// TestRecordedAddress reads info.yaml as go-dqlite writes it.
func TestRecordedAddress(t *testing.T) {
	for _, addr := range []string{freeAddr(t), "@hardbaked-recorded-test"} {
		dir := t.TempDir()
		closeStore(t, openStore(t, Config{Dir: dir, Address: addr}))
		got, err := recordedAddress(dir)
		if err != nil || got != addr {
			t.Errorf("recorded %q, %v; want %q", got, err, addr)
		}
	}
	if got, err := recordedAddress(t.TempDir()); got != "" || err != nil {
		t.Errorf("no node: %q %v", got, err)
	}
}
