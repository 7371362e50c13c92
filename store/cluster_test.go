//go:build cgo && libsqlite3

package store

import (
	"testing"
)

// TestTLSNode runs a node with mutual TLS between nodes (the cluster
// issue's default), end to end through the store.
func TestTLSNode(t *testing.T) {
	c, err := NewClusterTLS(testCert(t, "hardbaked"))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, Config{TLS: c})
	p := mustPutProfile(t, s, "web", "a: 1\n")
	o := mustCreate(t, s, newOrder(p, "tls", "h"))
	if got, err := s.GetOrder(ctxT(t), o.ID); err != nil || got.ClientOrderID != "tls" {
		t.Fatalf("%+v %v", got, err)
	}
	if r, err := s.Role(ctxT(t)); err != nil || !r.Leader {
		t.Fatalf("role %+v %v", r, err)
	}
}

// TestJoin starts a second node that joins the first: it reports a join,
// sees the same database (same cluster ID, the first node's data) and
// writes through it reach the leader. Nodes start one after another.
func TestJoin(t *testing.T) {
	a := openStore(t, Config{})
	p := mustPutProfile(t, a, "web", "a: 1\n")
	b := openStore(t, Config{Join: []string{a.Address()}})
	if b.StartKind() != StartJoin || b.ClusterID() != a.ClusterID() {
		t.Fatalf("joined node: %s cluster %s, first %s", b.StartKind(), b.ClusterID(), a.ClusterID())
	}
	ctx := ctxT(t)
	if got, err := b.GetProfile(ctx, "web", 0); err != nil || got.SHA256 != p.SHA256 {
		t.Fatalf("profile through the joined node: %+v %v", got, err)
	}
	o := mustCreate(t, b, newOrder(p, "via-b", "h"))
	if got, err := a.GetOrder(ctx, o.ID); err != nil || got.ClientOrderID != "via-b" {
		t.Fatalf("order written on b, read on a: %+v %v", got, err)
	}
	rb, err := b.Role(ctx)
	if err != nil || rb.Leader || rb.LeaderAddress != a.Address() || rb.Role == "" {
		t.Fatalf("joined node role %+v %v", rb, err)
	}
	// b's directory now holds a node: restarting it needs no join.
	closeStore(t, b)
	b2 := openStore(t, Config{Dir: dirOf(t, b)})
	if b2.StartKind() != StartRestart {
		t.Fatalf("restart of joined node: %s", b2.StartKind())
	}
	if _, err := b2.GetOrder(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
}
