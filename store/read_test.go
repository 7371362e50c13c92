//go:build cgo && libsqlite3

package store

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
)

// TestGetOrderMeta: the order without its files is the full order with
// the four file fields nil, through every state a status check meets.
func TestGetOrderMeta(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	n := newOrder(p, "meta", "h")
	n.NetworkConfig = []byte("version: 2\n")
	n.SeedISO = []byte("iso")
	n.EdgeTarget = []byte(`{"provider":"x"}`)
	id := mustCreate(t, s, n).ID
	check := func(step string) {
		t.Helper()
		full, err := s.GetOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := s.GetOrderMeta(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if meta.UserData != nil || meta.MetaData != nil || meta.NetworkConfig != nil || meta.SeedISO != nil {
			t.Fatalf("%s: meta read carries files: %+v", step, meta)
		}
		full.UserData, full.MetaData, full.NetworkConfig, full.SeedISO = nil, nil, nil, nil
		if !reflect.DeepEqual(meta, full) {
			t.Fatalf("%s:\nmeta %+v\nfull %+v", step, meta, full)
		}
	}
	check("created")
	if _, err := s.RecordReport(ctx, report(id, StatusHardened, "n1")); err != nil {
		t.Fatal(err)
	}
	check("reported")
	if _, err := s.CancelOrder(ctx, id); err != nil {
		t.Fatal(err)
	}
	check("cancelled")
	if o, _ := s.GetOrderMeta(ctx, id); o.RevokedAt.IsZero() {
		t.Fatal("cancelled order not revoked in the meta read")
	}
	if _, err := s.GetOrderMeta(ctx, NewOrderID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing order: %v", err)
	}
}

func TestLatestProfileRevision(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	if _, _, err := s.LatestProfileRevision(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no profile: %v", err)
	}
	mustPutProfile(t, s, "web", "a: 1\n")
	mustPutProfile(t, s, "other", "b: 1\n")
	p2 := mustPutProfile(t, s, "web", "a: 2\n")
	rev, sum, err := s.LatestProfileRevision(ctx, "web")
	if err != nil || rev != 2 || sum != p2.SHA256 || sum != sha256.Sum256([]byte("a: 2\n")) {
		t.Fatalf("latest: %d %x %v", rev, sum, err)
	}
}
