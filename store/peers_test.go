//go:build cgo && libsqlite3

package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPeers: membership, leadership transfer and removal from outside the
// nodes, and the raw client, on real in-process nodes (started one after
// another: creating app.Apps concurrently is not safe).
func TestPeers(t *testing.T) {
	a := openStore(t, Config{})
	b := openStore(t, Config{Join: []string{a.Address()}})
	c := openStore(t, Config{Join: []string{a.Address()}})
	p := Peers{Addresses: []string{b.Address()}} // any node finds the leader
	// One bound for the whole test (ctxT's 30 s is too tight for three
	// nodes and their promotion on a loaded machine).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ms []Member
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		ms, err = p.Members(ctx)
		voters := 0
		for _, m := range ms {
			if m.Role == "voter" {
				voters++
			}
		}
		if err == nil && voters == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three voters: %+v %v", ms, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ms[0].Leader && !ms[1].Leader && !ms[2].Leader {
		t.Fatalf("no leader in %+v", ms)
	}
	if own, err := c.Members(ctx); err != nil || len(own) != 3 {
		t.Fatalf("Store.Members: %+v %v", own, err)
	}
	if err := p.Transfer(ctx, c.Address()); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Role(ctx); err != nil || !r.Leader {
		t.Fatalf("after transfer to c: %+v %v", r, err)
	}
	if _, err := p.Remove(ctx, c.Address()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("removing the leader: %v, want ErrInvalid", err)
	}
	if _, err := p.Remove(ctx, "127.0.0.1:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing a stranger: %v, want ErrNotFound", err)
	}
	closeStore(t, b)
	p.Addresses = []string{a.Address(), c.Address()}
	m, err := p.Remove(ctx, b.Address())
	if err != nil || m.ID != b.NodeID() {
		t.Fatalf("remove b: %+v %v", m, err)
	}
	if ms, err := p.Members(ctx); err != nil || len(ms) != 2 {
		t.Fatalf("after remove: %+v %v", ms, err)
	}
	raw, err := p.OpenRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Insert(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := a.RawInsert(ctx, nil); err != nil { // same scratch table
		t.Fatal(err)
	}
}

// TestJoinForeignCertificate: a node whose certificate the cluster does
// not trust fails at once with a clear error instead of waiting for the
// join until its context ends.
func TestJoinForeignCertificate(t *testing.T) {
	mine, err := NewClusterTLS(testCert(t, "hardbaked"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := NewClusterTLS(testCert(t, "hardbaked"))
	if err != nil {
		t.Fatal(err)
	}
	a := openStore(t, Config{TLS: mine})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Open(ctx, Config{Dir: t.TempDir(), Address: freeAddr(t), Join: []string{a.Address()}, TLS: theirs})
	if !errors.Is(err, ErrInvalid) || time.Since(start) > 10*time.Second {
		t.Fatalf("join with a foreign certificate: %v after %s", err, time.Since(start))
	}
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if _, err := (Peers{Addresses: []string{a.Address()}, TLS: theirs}).Members(short); err == nil {
		t.Fatal("members answered a foreign certificate")
	}
	if ms, err := (Peers{Addresses: []string{a.Address()}, TLS: mine}).Members(ctx); err != nil || len(ms) != 1 {
		t.Fatalf("members with the cluster's certificate: %+v %v", ms, err)
	}
}
