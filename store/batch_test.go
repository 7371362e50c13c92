//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// holdBatch makes the creates queue up: it takes the write slot, starts
// one CreateOrder per order in order (each enqueued before the next
// starts, so the batch's order is theirs) and releases the slot, so that
// the first waiter to get it writes them all in one batch. It returns each
// create's outcome.
func holdBatch(t *testing.T, s *Store, ctx context.Context, orders []NewOrder) ([]CreateResult, []error) {
	t.Helper()
	s.writeSem <- struct{}{}
	res := make([]CreateResult, len(orders))
	errs := make([]error, len(orders))
	var wg sync.WaitGroup
	for i, n := range orders {
		wg.Go(func() { res[i], errs[i] = s.CreateOrder(ctx, n) })
		waitQueued(t, s, i+1)
	}
	<-s.writeSem
	wg.Wait()
	return res, errs
}

func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.createQ) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d creates queued after 10 s, want %d", len(s.createQ), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func recordBatches(s *Store) func() []int {
	var mu sync.Mutex
	var sizes []int
	s.batchHook = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}
}

// TestCreateBatch: creates queued behind a busy write slot go into one
// transaction, and each keeps the outcome it would have had alone: a
// duplicate finds the order created earlier in the same batch, a
// different request under the same client_order_id is a conflict, a
// missing profile revision is not found, and a create whose INSERT fails
// (a duplicate token hash) fails alone while the rest are stored.
func TestCreateBatch(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	before := mustCreate(t, s, newOrder(p, "before", "h"))
	batches := recordBatches(s)

	a := newOrder(p, "a", "h")
	aRetry := newOrder(p, "a", "h")
	aRetry.TokenHash = HashToken("another token") // rendered afresh, as the service does
	aOther := newOrder(p, "a", "other host")
	missing := newOrder(p, "missing", "h")
	missing.ProfileRevision = 7
	dupTok := newOrder(p, "dup-token", "h")
	dupTok.TokenHash = before.TokenHash
	b, c := newOrder(p, "b", "h"), newOrder(p, "c", "h")
	beforeRetry := newOrder(p, "before", "h")
	orders := []NewOrder{a, b, aRetry, aOther, missing, dupTok, c, beforeRetry}
	res, errs := holdBatch(t, s, ctx, orders)

	if got := batches(); len(got) == 0 || got[0] != len(orders) {
		t.Fatalf("batch sizes %v, want a first batch of %d", got, len(orders))
	}
	for _, i := range []int{0, 1, 6} { // a, b, c: created
		if errs[i] != nil || res[i].Existed || res[i].Order.ID != orders[i].ID {
			t.Errorf("%s: %+v %v, want created", orders[i].ClientOrderID, res[i], errs[i])
		}
	}
	if errs[2] != nil || !res[2].Existed || res[2].Order.ID != a.ID || res[2].Order.TokenHash != a.TokenHash {
		t.Errorf("retry of a in the same batch: %+v %v, want a, existed", res[2], errs[2])
	}
	if !errors.Is(errs[3], ErrConflict) {
		t.Errorf("other request under a: err = %v, want ErrConflict", errs[3])
	}
	if !errors.Is(errs[4], ErrNotFound) {
		t.Errorf("missing profile revision: err = %v, want ErrNotFound", errs[4])
	}
	if errs[5] == nil || errors.Is(errs[5], ErrConflict) || errors.Is(errs[5], ErrNotFound) {
		t.Errorf("duplicate token hash: err = %v, want a constraint error", errs[5])
	}
	if errs[7] != nil || !res[7].Existed || res[7].Order.ID != before.ID {
		t.Errorf("retry of an earlier order: %+v %v", res[7], errs[7])
	}
	for _, cid := range []string{"missing", "dup-token"} {
		if _, err := s.OrderByClientOrderID(ctx, cid); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s stored: err = %v, want ErrNotFound", cid, err)
		}
	}
	for _, n := range []NewOrder{a, b, c} {
		got, err := s.OrderByClientOrderID(ctx, n.ClientOrderID)
		if err != nil || got.ID != n.ID || got.TokenHash != n.TokenHash {
			t.Errorf("%s: %+v %v", n.ClientOrderID, got, err)
		}
	}
	list, _, err := s.ListOrders(ctx, ListOptions{})
	if err != nil || len(list) != 4 {
		t.Fatalf("orders %d %v, want 4 (before, a, b, c)", len(list), err)
	}
}

// TestCreateBatchAmbiguousCommit: a batch whose commit went through but
// reported a transient error is rerun; every create recognises its own
// order and reports it created, nothing is stored twice.
func TestCreateBatchAmbiguousCommit(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	batches := recordBatches(s)
	var mu sync.Mutex
	failures := 0
	s.commitErr = func() error {
		mu.Lock()
		defer mu.Unlock()
		if failures == 0 {
			failures++
			return driver.ErrBadConn
		}
		return nil
	}
	var orders []NewOrder
	for i := range 5 {
		orders = append(orders, newOrder(p, fmt.Sprintf("amb-%d", i), "h"))
	}
	orders = append(orders, newOrder(p, "amb-0", "h")) // a client retry inside the batch
	res, errs := holdBatch(t, s, ctx, orders)
	if got := batches(); len(got) != 1 || got[0] != len(orders) || failures != 1 {
		t.Fatalf("batches %v, ambiguous commits %d: want one batch of %d, one failure", got, failures, len(orders))
	}
	for i, n := range orders[:5] {
		if errs[i] != nil || res[i].Existed || res[i].Order.ID != n.ID {
			t.Errorf("%s: %+v %v, want created (own commit recognised)", n.ClientOrderID, res[i], errs[i])
		}
	}
	if errs[5] != nil || !res[5].Existed || res[5].Order.ID != orders[0].ID {
		t.Errorf("retry inside the batch: %+v %v", res[5], errs[5])
	}
	if list, _, err := s.ListOrders(ctx, ListOptions{}); err != nil || len(list) != 5 {
		t.Fatalf("orders %d %v, want 5", len(list), err)
	}
}

// TestCreateBatchCancelled: a create whose caller gave up while it was
// queued is dropped from its batch, not written.
func TestCreateBatchCancelled(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	s.writeSem <- struct{}{}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.CreateOrder(cctx, newOrder(p, "gone", "h")); done <- err }()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled create: err = %v, want context.Canceled", err)
	}
	<-s.writeSem
	mustCreate(t, s, newOrder(p, "next", "h"))
	if _, err := s.OrderByClientOrderID(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled create stored: err = %v", err)
	}
}

// TestCreateBatchConcurrent: many writers, each client_order_id sent by
// two of them with the same request and fresh secrets: exactly one order
// per client_order_id, both callers get it, exactly one of them as
// created. Run with -race.
func TestCreateBatchConcurrent(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	const workers, each = 8, 12
	type outcome struct {
		id      string
		created bool
	}
	var mu sync.Mutex
	got := map[string][]outcome{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Worker pairs (0,1), (2,3) ... send the same ids.
				cid := fmt.Sprintf("c-%d-%d", w/2, i)
				n := newOrder(p, cid, "h")
				n.TokenHash = HashToken(fmt.Sprintf("tok-%d-%d", w, i))
				r, err := s.CreateOrder(ctx, n)
				if err != nil {
					t.Errorf("%s: %v", cid, err)
					continue
				}
				if !r.Existed && r.Order.ID != n.ID {
					t.Errorf("%s: created, but as %s, not %s", cid, r.Order.ID, n.ID)
				}
				mu.Lock()
				got[cid] = append(got[cid], outcome{r.Order.ID, !r.Existed})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != workers/2*each {
		t.Fatalf("%d client_order_ids answered, want %d", len(got), workers/2*each)
	}
	for cid, outs := range got {
		if len(outs) != 2 || outs[0].id != outs[1].id || outs[0].created == outs[1].created {
			t.Errorf("%s: %+v, want one order, created once", cid, outs)
		}
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil || counts[StatusCreated] != workers/2*each {
		t.Fatalf("counts %v %v, want %d created", counts, err, workers/2*each)
	}
}

// TestCreateQueueAbandoned: a queue full of creates whose callers all
// gave up still lets the next create through (it drains them itself).
func TestCreateQueueAbandoned(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	s.writeSem <- struct{}{}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range createQueueLen {
		wg.Go(func() {
			if _, err := s.CreateOrder(cctx, newOrder(p, fmt.Sprintf("gone-%d", i), "h")); !errors.Is(err, context.Canceled) {
				t.Errorf("gone-%d: err = %v, want context.Canceled", i, err)
			}
		})
	}
	waitQueued(t, s, createQueueLen)
	cancel()
	wg.Wait()
	<-s.writeSem
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	if _, err := s.CreateOrder(tctx, newOrder(p, "next", "h")); err != nil {
		t.Fatalf("create after abandoned queue: %v", err)
	}
	if counts, err := s.CountByStatus(ctx); err != nil || counts[StatusCreated] != 1 {
		t.Fatalf("counts %v %v, want only the last order", counts, err)
	}
}

// TestCreateIfLatest: a create made for the profile's latest revision
// (IfLatest) is stored only while that revision is the latest and has the
// SHA-256 the caller saw; otherwise ErrStale, nothing written, alone or in
// a batch, and a retry of an order stored before still finds it.
func TestCreateIfLatest(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p1 := mustPutProfile(t, s, "web", "a: 1\n")
	latest := func(n NewOrder, p Profile) NewOrder {
		n.IfLatest, n.ProfileRevision, n.ProfileSHA256 = true, p.Revision, p.SHA256
		return n
	}
	first := latest(newOrder(p1, "l-1", "h"), p1)
	mustCreate(t, s, first)

	wrongSum := latest(newOrder(p1, "l-2", "h"), p1)
	wrongSum.ProfileSHA256[0] ^= 1
	if _, err := s.CreateOrder(ctx, wrongSum); !errors.Is(err, ErrStale) {
		t.Fatalf("another SHA-256: err = %v, want ErrStale", err)
	}

	p2 := mustPutProfile(t, s, "web", "a: 2\n")
	stale := latest(newOrder(p1, "l-3", "h"), p1)
	if _, err := s.CreateOrder(ctx, stale); !errors.Is(err, ErrStale) {
		t.Fatalf("older revision: err = %v, want ErrStale", err)
	}
	// The same order pinned to revision 1 (IfLatest unset) is fine.
	pinned := newOrder(p1, "l-4", "h")
	mustCreate(t, s, pinned)
	// A retry of the first order finds it, though revision 1 is no longer
	// the latest; with another body it is still a conflict.
	r, err := s.CreateOrder(ctx, latest(newOrder(p1, "l-1", "h"), p1))
	if err != nil || !r.Existed || r.Order.ID != first.ID {
		t.Fatalf("retry: %+v %v", r, err)
	}
	if _, err := s.CreateOrder(ctx, latest(newOrder(p2, "l-1", "other"), p2)); !errors.Is(err, ErrConflict) {
		t.Fatalf("retry with another body: err = %v, want ErrConflict", err)
	}
	// A missing revision is not the latest either.
	missing := latest(newOrder(p2, "l-5", "h"), p2)
	missing.ProfileRevision = 9
	if _, err := s.CreateOrder(ctx, missing); !errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
		t.Fatalf("missing revision: err = %v, want ErrStale", err)
	}

	// In one batch: the stale create fails alone, the others are stored.
	sizes := recordBatches(s)
	orders := []NewOrder{latest(newOrder(p2, "b-1", "h"), p2), latest(newOrder(p1, "b-2", "h"), p1), latest(newOrder(p2, "b-3", "h"), p2)}
	_, errs := holdBatch(t, s, ctx, orders)
	if errs[0] != nil || !errors.Is(errs[1], ErrStale) || errs[2] != nil {
		t.Fatalf("batch: %v", errs)
	}
	if got := sizes(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("batches %v, want one of 3", got)
	}
	for cid, want := range map[string]error{"l-2": ErrNotFound, "l-3": ErrNotFound, "l-5": ErrNotFound, "b-2": ErrNotFound, "l-4": nil, "b-1": nil, "b-3": nil} {
		if _, err := s.OrderByClientOrderID(ctx, cid); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s: err = %v, want %v", cid, err, want)
		}
	}
}
