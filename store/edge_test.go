//go:build cgo && libsqlite3

package store

import (
	"errors"
	"fmt"
	"testing"
)

// TestEdge: an order carries its edge target from creation or from
// SetEdgeTarget and its edge outcome from SetEdgeOutcome, both as given;
// the values survive a restart; bad JSON, unknown and revoked orders are
// refused without a change.
func TestEdge(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")

	n := newOrder(p, "edge-1", "h")
	n.EdgeTarget = []byte(`{"ip":"203.0.113.10"}`)
	o := mustCreate(t, s, n)
	if string(o.EdgeTarget) != `{"ip":"203.0.113.10"}` || o.EdgeOutcome != nil {
		t.Fatalf("created: target %s outcome %s", o.EdgeTarget, o.EdgeOutcome)
	}
	got, err := s.GetOrder(ctx, o.ID)
	if err != nil || string(got.EdgeTarget) != `{"ip":"203.0.113.10"}` || got.EdgeOutcome != nil {
		t.Fatalf("read back: %s %s %v", got.EdgeTarget, got.EdgeOutcome, err)
	}

	plain := mustCreate(t, s, newOrder(p, "edge-2", "h"))
	if plain.EdgeTarget != nil {
		t.Fatalf("order without target: %s", plain.EdgeTarget)
	}
	up, err := s.SetEdgeTarget(ctx, plain.ID, []byte(`{"ip":"198.51.100.7","hetzner_server_id":42}`))
	if err != nil || string(up.EdgeTarget) != `{"ip":"198.51.100.7","hetzner_server_id":42}` {
		t.Fatalf("SetEdgeTarget: %s %v", up.EdgeTarget, err)
	}
	if err := s.SetEdgeOutcome(ctx, plain.ID, []byte(`{"state":"applied"}`)); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]byte{nil, []byte("{"), make([]byte, maxEdgeJSON+1)} {
		if _, err := s.SetEdgeTarget(ctx, plain.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetEdgeTarget(%.10q): %v", bad, err)
		}
		if err := s.SetEdgeOutcome(ctx, plain.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetEdgeOutcome(%.10q): %v", bad, err)
		}
	}
	bn := newOrder(p, "edge-3", "h")
	bn.EdgeTarget = []byte("not json")
	if _, err := s.CreateOrder(ctx, bn); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateOrder with bad target: %v", err)
	}
	missing := NewOrderID()
	if _, err := s.SetEdgeTarget(ctx, missing, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetEdgeTarget on no order: %v", err)
	}
	if err := s.SetEdgeOutcome(ctx, missing, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetEdgeOutcome on no order: %v", err)
	}

	// Cancelled: no new target, but an outcome is still recorded.
	if _, err := s.CancelOrder(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetEdgeTarget(ctx, o.ID, []byte(`{"ip":"203.0.113.11"}`)); !errors.Is(err, ErrRevoked) {
		t.Errorf("SetEdgeTarget on a cancelled order: %v", err)
	}
	if err := s.SetEdgeOutcome(ctx, o.ID, []byte(`{"state":"failed"}`)); err != nil {
		t.Errorf("SetEdgeOutcome on a cancelled order: %v", err)
	}

	dir := dirOf(t, s)
	closeStore(t, s)
	s = openStore(t, Config{Dir: dir})
	got, err = s.GetOrder(ctx, plain.ID)
	if err != nil || string(got.EdgeTarget) != `{"ip":"198.51.100.7","hetzner_server_id":42}` || string(got.EdgeOutcome) != `{"state":"applied"}` {
		t.Fatalf("after restart: %s %s %v", got.EdgeTarget, got.EdgeOutcome, err)
	}
	got, _ = s.GetOrder(ctx, o.ID)
	if string(got.EdgeTarget) != `{"ip":"203.0.113.10"}` || string(got.EdgeOutcome) != `{"state":"failed"}` {
		t.Fatalf("cancelled order after restart: %s %s", got.EdgeTarget, got.EdgeOutcome)
	}

	// EdgeOrders: those with a target and not revoked, oldest first, in pages.
	var ids []string
	for i := range 3 {
		n := newOrder(p, fmt.Sprintf("edge-page-%d", i), "h")
		n.EdgeTarget = []byte(`{"hetzner_server_id":1}`)
		ids = append(ids, mustCreate(t, s, n).ID)
	}
	mustCreate(t, s, newOrder(p, "edge-no-target", "h"))
	var got2 []string
	cursor := ""
	for range 10 {
		page, next, err := s.EdgeOrders(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, eo := range page {
			got2 = append(got2, eo.ID)
			if eo.ID == plain.ID && (string(eo.EdgeOutcome) != `{"state":"applied"}` || eo.Status != StatusCreated || eo.ProfileName != "web") {
				t.Errorf("edge order %+v", eo)
			}
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if want := append([]string{plain.ID}, ids...); fmt.Sprint(got2) != fmt.Sprint(want) {
		t.Errorf("EdgeOrders: %v, want %v", got2, want)
	}
	if _, _, err := s.EdgeOrders(ctx, "x", 2); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad cursor: %v", err)
	}
	if _, _, err := s.EdgeOrders(ctx, "", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("limit 0: %v", err)
	}
}
