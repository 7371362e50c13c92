//go:build cgo && libsqlite3

package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestProfiles(t *testing.T) {
	c := newClock()
	s := openStore(t, Config{Now: c.Now})
	ctx := ctxT(t)

	p1, created, err := s.PutProfile(ctx, "web", "application/yaml", []byte("a: 1\n"))
	if err != nil || !created || p1.Revision != 1 {
		t.Fatalf("first put: %+v created=%v err=%v", p1, created, err)
	}
	c.Add(time.Second)
	// Identical document and type: no new revision, the latest back.
	again, created, err := s.PutProfile(ctx, "web", "application/yaml", []byte("a: 1\n"))
	if err != nil || created || again.Revision != 1 || !again.CreatedAt.Equal(p1.CreatedAt) {
		t.Fatalf("identical put: %+v created=%v err=%v", again, created, err)
	}
	// Same bytes, other content type: a new revision.
	p2, created, err := s.PutProfile(ctx, "web", "application/json", []byte("a: 1\n"))
	if err != nil || !created || p2.Revision != 2 {
		t.Fatalf("retyped put: %+v created=%v err=%v", p2, created, err)
	}
	p3, created, err := s.PutProfile(ctx, "web", "application/yaml", []byte("a: 2\n"))
	if err != nil || !created || p3.Revision != 3 {
		t.Fatalf("changed put: %+v created=%v err=%v", p3, created, err)
	}
	// An older document again is a new revision too: only the latest counts.
	p4, created, err := s.PutProfile(ctx, "web", "application/yaml", []byte("a: 1\n"))
	if err != nil || !created || p4.Revision != 4 {
		t.Fatalf("reverted put: %+v created=%v err=%v", p4, created, err)
	}
	if _, _, err := s.PutProfile(ctx, "db", "application/yaml", nil); err != nil {
		t.Fatalf("empty document: %v", err)
	}

	for _, tc := range []struct {
		name string
		rev  int64
		want *Profile
		err  error
	}{
		{"web", 0, &p4, nil},
		{"web", 1, &p1, nil},
		{"web", 2, &p2, nil},
		{"web", 5, nil, ErrNotFound},
		{"nope", 0, nil, ErrNotFound},
		{"web", -1, nil, ErrInvalid},
	} {
		t.Run(fmt.Sprintf("%s@%d", tc.name, tc.rev), func(t *testing.T) {
			got, err := s.GetProfile(ctx, tc.name, tc.rev)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.want == nil {
				return
			}
			if got.Name != tc.want.Name || got.Revision != tc.want.Revision || got.ContentType != tc.want.ContentType ||
				!bytes.Equal(got.Document, tc.want.Document) || got.SHA256 != tc.want.SHA256 || !got.CreatedAt.Equal(tc.want.CreatedAt) {
				t.Fatalf("got %+v\nwant %+v", got, *tc.want)
			}
		})
	}

	list, err := s.ListProfiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "db" || list[0].LatestRevision != 1 ||
		list[1].Name != "web" || list[1].LatestRevision != 4 || list[1].SHA256 != p4.SHA256 {
		t.Fatalf("ListProfiles = %+v", list)
	}

	for _, bad := range []string{"", "with space", "tab\tname", string(make([]byte, MaxNameLen+1))} {
		if _, _, err := s.PutProfile(ctx, bad, "application/yaml", []byte("x")); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutProfile(%q): err = %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := s.PutProfile(ctx, "web", "", []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty content type: err = %v, want ErrInvalid", err)
	}
}

func TestCreateOrderIdempotent(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")

	n := newOrder(p, "cid-1", "host-a")
	n.NetworkConfig = []byte("version: 2\n")
	n.SeedISO = []byte("ISO bytes")
	first := mustCreate(t, s, n)
	if first.Status != StatusCreated || first.ID != n.ID {
		t.Fatalf("created %+v", first)
	}

	// The same request again (a client retry, with a fresh ID and secrets
	// rendered for it): the first order, flagged, nothing new stored.
	retry := newOrder(p, "cid-1", "host-a")
	r, err := s.CreateOrder(ctx, retry)
	if err != nil || !r.Existed || r.Order.ID != first.ID || r.Order.TokenHash != n.TokenHash {
		t.Fatalf("retry: %+v err=%v", r, err)
	}
	// Another request under the same client_order_id: conflict.
	if _, err := s.CreateOrder(ctx, newOrder(p, "cid-1", "host-b")); !errors.Is(err, ErrConflict) {
		t.Fatalf("different body: err = %v, want ErrConflict", err)
	}
	// A missing profile revision is not found, and stores nothing.
	missing := newOrder(p, "cid-2", "host-c")
	missing.ProfileRevision = 9
	if _, err := s.CreateOrder(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing profile revision: err = %v, want ErrNotFound", err)
	}
	if _, err := s.OrderByClientOrderID(ctx, "cid-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("order of failed create: err = %v, want ErrNotFound", err)
	}
	// An empty ID is filled in.
	noID := newOrder(p, "cid-3", "host-d")
	noID.ID = ""
	if o := mustCreate(t, s, noID); validOrderID(o.ID) != nil {
		t.Fatalf("generated id %q", o.ID)
	}
	// The same token twice would make OrderByToken ambiguous: refused.
	dupTok := newOrder(p, "cid-4", "host-e")
	dupTok.TokenHash = n.TokenHash
	if _, err := s.CreateOrder(ctx, dupTok); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate token hash: err = %v, want a constraint error", err)
	}

	// Everything stored comes back, by ID, by client order ID, by token.
	for name, get := range map[string]func() (Order, error){
		"id":    func() (Order, error) { return s.GetOrder(ctx, first.ID) },
		"cid":   func() (Order, error) { return s.OrderByClientOrderID(ctx, "cid-1") },
		"token": func() (Order, error) { return s.OrderByToken(ctx, HashToken("token-cid-1-host-a")) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != n.ID || got.ClientOrderID != n.ClientOrderID || got.RequestSHA256 != n.RequestSHA256 ||
			!bytes.Equal(got.Request, n.Request) || got.Status != StatusCreated ||
			got.ProfileName != "web" || got.ProfileRevision != 1 ||
			!bytes.Equal(got.UserData, n.UserData) || !bytes.Equal(got.MetaData, n.MetaData) ||
			!bytes.Equal(got.NetworkConfig, n.NetworkConfig) || !bytes.Equal(got.SeedISO, n.SeedISO) ||
			got.TokenHash != n.TokenHash || !bytes.Equal(got.ReportKey, n.ReportKey) ||
			!got.CreatedAt.Equal(first.CreatedAt) || !got.FetchedAt.IsZero() || got.Report != nil {
			t.Fatalf("%s: got %+v\nwant %+v", name, got, n)
		}
	}
	// Optional bytes stay absent when not given.
	o3, err := s.OrderByClientOrderID(ctx, "cid-3")
	if err != nil || o3.NetworkConfig != nil || o3.SeedISO != nil {
		t.Fatalf("cid-3: %+v %v", o3, err)
	}
	for name, err := range map[string]error{
		"unknown id":    func() error { _, err := s.GetOrder(ctx, "nope"); return err }(),
		"unknown token": func() error { _, err := s.OrderByToken(ctx, HashToken("nope")); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}

	bad := map[string]func(*NewOrder){
		"bad id":        func(n *NewOrder) { n.ID = "UPPER/case" },
		"no cid":        func(n *NewOrder) { n.ClientOrderID = "" },
		"no profile":    func(n *NewOrder) { n.ProfileName = "" },
		"revision 0":    func(n *NewOrder) { n.ProfileRevision = 0 },
		"short key":     func(n *NewOrder) { n.ReportKey = []byte("short") },
		"no token hash": func(n *NewOrder) { n.TokenHash = [32]byte{} },
	}
	for name, mut := range bad {
		n := newOrder(p, "cid-bad", "x")
		mut(&n)
		if _, err := s.CreateOrder(ctx, n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// report builds a valid report for order id.
func report(id string, st Status, nonce string) Report {
	return Report{
		OrderID: id, Status: st, Nonce: nonce, Timestamp: time.Unix(1700000000, 0),
		Signature: []byte("sig-" + nonce), Body: []byte(`{"result":"` + string(st) + `"}`),
		HostKeys: []HostKey{{Type: "ssh-ed25519", Fingerprint: "SHA256:abc"}},
	}
}

func TestOrderLifecycle(t *testing.T) {
	c := newClock()
	s := openStore(t, Config{Now: c.Now})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	seq := 0
	// fresh creates an order and brings it to the given status.
	fresh := func(t *testing.T, st Status) Order {
		t.Helper()
		seq++
		o := mustCreate(t, s, newOrder(p, fmt.Sprintf("life-%d", seq), "h"))
		switch st {
		case StatusCreated:
		case StatusFetched:
			if first, err := s.MarkFetched(ctx, o.ID); err != nil || !first {
				t.Fatalf("MarkFetched: %v %v", first, err)
			}
		case StatusHardened, StatusPartial, StatusFailed:
			if _, err := s.RecordReport(ctx, report(o.ID, st, "setup")); err != nil {
				t.Fatal(err)
			}
		case StatusCancelled:
			if _, err := s.CancelOrder(ctx, o.ID); err != nil {
				t.Fatal(err)
			}
		case StatusTimedOut:
			c.Add(time.Hour)
			if n, err := s.TimeOutOrders(ctx, c.Now().Add(-time.Minute)); err != nil || n != 1 {
				t.Fatalf("TimeOutOrders: %d %v", n, err)
			}
		}
		got, err := s.GetOrder(ctx, o.ID)
		if err != nil || got.Status != st {
			t.Fatalf("setup %s: got %s, %v", st, got.Status, err)
		}
		return got
	}

	// A report from every status.
	for _, tc := range []struct {
		from Status
		to   Status
		err  error
	}{
		{StatusCreated, StatusHardened, nil},
		{StatusFetched, StatusHardened, nil},
		{StatusFetched, StatusPartial, nil},
		{StatusFetched, StatusFailed, nil},
		{StatusHardened, StatusFailed, ErrInvalidTransition},
		{StatusPartial, StatusHardened, ErrInvalidTransition},
		{StatusFailed, StatusHardened, ErrInvalidTransition},
		{StatusTimedOut, StatusHardened, ErrInvalidTransition},
		{StatusCancelled, StatusHardened, ErrRevoked},
		{StatusFetched, StatusTimedOut, ErrInvalid},
		{StatusFetched, StatusCreated, ErrInvalid},
	} {
		t.Run(fmt.Sprintf("report %s to %s", tc.from, tc.to), func(t *testing.T) {
			o := fresh(t, tc.from)
			c.Add(time.Second)
			got, err := s.RecordReport(ctx, report(o.ID, tc.to, "n1"))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			after, gerr := s.GetOrder(ctx, o.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tc.err != nil {
				// Refused: nothing changed.
				if after.Status != o.Status || !bytes.Equal(after.Report, o.Report) || !after.ReportedAt.Equal(o.ReportedAt) {
					t.Fatalf("refused report changed the order: %+v -> %+v", o, after)
				}
				return
			}
			if got.Status != tc.to || after.Status != tc.to || !after.ReportedAt.Equal(c.Now()) ||
				!after.FinishedAt.Equal(c.Now()) || string(after.Report) != `{"result":"`+string(tc.to)+`"}` ||
				!slices.Equal(after.HostKeys, []HostKey{{Type: "ssh-ed25519", Fingerprint: "SHA256:abc"}}) {
				t.Fatalf("after report: %+v", after)
			}
			// The same report again is a replay, and changes nothing.
			if _, err := s.RecordReport(ctx, report(o.ID, tc.to, "n1")); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: err = %v, want ErrReplay", err)
			}
			// A fresh nonce on a reported order: not a replay, but no
			// longer open.
			if _, err := s.RecordReport(ctx, report(o.ID, StatusFailed, "n2")); !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("second report: err = %v, want ErrInvalidTransition", err)
			}
			again, _ := s.GetOrder(ctx, o.ID)
			if again.Status != tc.to || !bytes.Equal(again.Report, after.Report) {
				t.Fatalf("refused reports changed the order: %+v", again)
			}
		})
	}
	t.Run("report for unknown order", func(t *testing.T) {
		if _, err := s.RecordReport(ctx, report("nosuchorder00000", StatusHardened, "n")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("report without nonce or signature", func(t *testing.T) {
		o := fresh(t, StatusFetched)
		r := report(o.ID, StatusHardened, "")
		if _, err := s.RecordReport(ctx, r); !errors.Is(err, ErrInvalid) {
			t.Fatalf("no nonce: err = %v", err)
		}
		r = report(o.ID, StatusHardened, "n")
		r.Signature = nil
		if _, err := s.RecordReport(ctx, r); !errors.Is(err, ErrInvalid) {
			t.Fatalf("no signature: err = %v", err)
		}
	})
	t.Run("nonces are per order", func(t *testing.T) {
		a, b := fresh(t, StatusFetched), fresh(t, StatusFetched)
		if _, err := s.RecordReport(ctx, report(a.ID, StatusHardened, "same")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordReport(ctx, report(b.ID, StatusHardened, "same")); err != nil {
			t.Fatalf("same nonce, other order: %v", err)
		}
	})

	t.Run("mark fetched once", func(t *testing.T) {
		o := fresh(t, StatusCreated)
		c.Add(time.Second)
		at := c.Now()
		if first, err := s.MarkFetched(ctx, o.ID); err != nil || !first {
			t.Fatalf("first: %v %v", first, err)
		}
		c.Add(time.Second)
		if first, err := s.MarkFetched(ctx, o.ID); err != nil || first {
			t.Fatalf("second: %v %v", first, err)
		}
		got, _ := s.GetOrder(ctx, o.ID)
		if got.Status != StatusFetched || !got.FetchedAt.Equal(at) {
			t.Fatalf("after fetches: %s %v, want fetched at %v", got.Status, got.FetchedAt, at)
		}
		// A fetch after the report is recorded, status kept.
		h := fresh(t, StatusHardened)
		if first, err := s.MarkFetched(ctx, h.ID); err != nil || !first {
			t.Fatalf("fetch of hardened: %v %v", first, err)
		}
		if got, _ := s.GetOrder(ctx, h.ID); got.Status != StatusHardened || got.FetchedAt.IsZero() {
			t.Fatalf("hardened after fetch: %+v", got)
		}
		if _, err := s.MarkFetched(ctx, "nosuchorder00000"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		for _, from := range []Status{StatusCreated, StatusFetched} {
			o := fresh(t, from)
			c.Add(time.Second)
			got, err := s.CancelOrder(ctx, o.ID)
			if err != nil || got.Status != StatusCancelled || !got.RevokedAt.Equal(c.Now()) || !got.FinishedAt.Equal(c.Now()) {
				t.Fatalf("cancel from %s: %+v %v", from, got, err)
			}
			if _, err := s.OrderByToken(ctx, o.TokenHash); !errors.Is(err, ErrRevoked) {
				t.Fatalf("token after cancel: %v", err)
			}
			if _, err := s.MarkFetched(ctx, o.ID); !errors.Is(err, ErrRevoked) {
				t.Fatalf("fetch after cancel: %v", err)
			}
			// Cancelling again changes nothing.
			c.Add(time.Second)
			again, err := s.CancelOrder(ctx, o.ID)
			if err != nil || !again.RevokedAt.Equal(got.RevokedAt) || again.Status != StatusCancelled {
				t.Fatalf("second cancel: %+v %v", again, err)
			}
		}
		// A final order keeps its status but loses its token.
		h := fresh(t, StatusHardened)
		got, err := s.CancelOrder(ctx, h.ID)
		if err != nil || got.Status != StatusHardened || got.RevokedAt.IsZero() || !got.FinishedAt.Equal(h.FinishedAt) {
			t.Fatalf("cancel hardened: %+v %v", got, err)
		}
		if _, err := s.OrderByToken(ctx, h.TokenHash); !errors.Is(err, ErrRevoked) {
			t.Fatalf("token of cancelled hardened order: %v", err)
		}
		if _, err := s.CancelOrder(ctx, "nosuchorder00000"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
}

func TestTimeOutOrders(t *testing.T) {
	c := newClock()
	s := openStore(t, Config{Now: c.Now})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	old := mustCreate(t, s, newOrder(p, "old", "h"))       // created at t0, never fetched
	oldFetched := mustCreate(t, s, newOrder(p, "of", "h")) // created at t0, fetched at t0+50m
	reported := mustCreate(t, s, newOrder(p, "rep", "h"))  // created at t0, reported
	cancelled := mustCreate(t, s, newOrder(p, "can", "h")) // created at t0, cancelled
	c.Add(50 * time.Minute)
	if _, err := s.MarkFetched(ctx, oldFetched.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordReport(ctx, report(reported.ID, StatusPartial, "n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelOrder(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	young := mustCreate(t, s, newOrder(p, "young", "h")) // created at t0+50m
	c.Add(20 * time.Minute)                              // now t0+70m

	// A 30-minute deadline: old (70m since creation) times out; oldFetched
	// (20m since its fetch) and young (20m) do not; final ones never.
	n, err := s.TimeOutOrders(ctx, c.Now().Add(-30*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("TimeOutOrders: %d %v, want 1", n, err)
	}
	want := map[string]Status{
		old.ID: StatusTimedOut, oldFetched.ID: StatusFetched, reported.ID: StatusPartial,
		cancelled.ID: StatusCancelled, young.ID: StatusCreated,
	}
	for id, st := range want {
		o, err := s.GetOrder(ctx, id)
		if err != nil || o.Status != st {
			t.Errorf("%s: %s %v, want %s", o.ClientOrderID, o.Status, err, st)
		}
		if st == StatusTimedOut && !o.FinishedAt.Equal(c.Now()) {
			t.Errorf("timed-out order finished at %v, want %v", o.FinishedAt, c.Now())
		}
	}
	// Later, everything open times out; then nothing is left.
	c.Add(time.Hour)
	if n, err := s.TimeOutOrders(ctx, c.Now().Add(-30*time.Minute)); err != nil || n != 2 {
		t.Fatalf("second TimeOutOrders: %d %v, want 2", n, err)
	}
	if n, err := s.TimeOutOrders(ctx, c.Now()); err != nil || n != 0 {
		t.Fatalf("third TimeOutOrders: %d %v, want 0", n, err)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[Status]int64{StatusTimedOut: 3, StatusPartial: 1, StatusCancelled: 1}
	for _, st := range Statuses() {
		if counts[st] != wantCounts[st] {
			t.Errorf("CountByStatus[%s] = %d, want %d", st, counts[st], wantCounts[st])
		}
	}
	if len(counts) != len(Statuses()) {
		t.Errorf("CountByStatus has %d keys, want every status", len(counts))
	}
}

func TestListOrders(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	var ids []string // creation order
	for i := range 7 {
		o := mustCreate(t, s, newOrder(p, fmt.Sprintf("list-%d", i), "h"))
		ids = append(ids, o.ID)
		if i%3 == 0 {
			if _, err := s.MarkFetched(ctx, o.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	newestFirst := slices.Clone(ids)
	slices.Reverse(newestFirst)

	pages := func(opt ListOptions, insertAfterFirst bool) ([]string, []int) {
		t.Helper()
		var got []string
		var sizes []int
		for range 20 {
			page, next, err := s.ListOrders(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page))
			for _, o := range page {
				got = append(got, o.ID)
			}
			if insertAfterFirst && len(sizes) == 1 {
				mustCreate(t, s, newOrder(p, "list-late", "h"))
			}
			if next == "" {
				return got, sizes
			}
			opt.Cursor = next
		}
		t.Fatal("pagination does not end")
		return nil, nil
	}
	got, sizes := pages(ListOptions{Limit: 3}, false)
	if !slices.Equal(got, newestFirst) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Fatalf("pages %v of %v, want %v", sizes, got, newestFirst)
	}
	got, sizes = pages(ListOptions{Limit: 7}, false)
	if !slices.Equal(got, newestFirst) || !slices.Equal(sizes, []int{7}) {
		t.Fatalf("one exact page: %v %v", sizes, got)
	}
	// Filter: orders 0, 3, 6 were fetched.
	got, _ = pages(ListOptions{Status: StatusFetched, Limit: 2}, false)
	if !slices.Equal(got, []string{ids[6], ids[3], ids[0]}) {
		t.Fatalf("fetched: %v", got)
	}
	got, _ = pages(ListOptions{Status: StatusHardened}, false)
	if len(got) != 0 {
		t.Fatalf("hardened: %v", got)
	}
	// An order created while paging neither shifts nor repeats a page.
	got, _ = pages(ListOptions{Limit: 3}, true)
	if !slices.Equal(got, newestFirst) {
		t.Fatalf("paging during insert: %v, want %v", got, newestFirst)
	}
	page, _, err := s.ListOrders(ctx, ListOptions{})
	if err != nil || len(page) != 8 || page[0].ClientOrderID != "list-late" {
		t.Fatalf("default limit: %d orders, %v", len(page), err)
	}
	for name, opt := range map[string]ListOptions{
		"bad cursor":     {Cursor: "abc"},
		"zero cursor":    {Cursor: "0"},
		"bad status":     {Status: "done"},
		"negative limit": {Limit: -1},
	} {
		if _, _, err := s.ListOrders(ctx, opt); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// TestRestart closes a node and opens its directory again: everything
// acknowledged before the close is there, under the same cluster.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx := ctxT(t)
	s, err := Open(ctx, Config{Dir: dir, Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if s.StartKind() != StartBootstrap {
		t.Fatalf("first start: %s", s.StartKind())
	}
	clusterID := s.ClusterID()
	p := mustPutProfile(t, s, "web", "a: 1\n")
	var ids []string
	for i := range 20 {
		ids = append(ids, mustCreate(t, s, newOrder(p, fmt.Sprintf("r-%d", i), "h")).ID)
	}
	if _, err := s.RecordReport(ctx, report(ids[0], StatusHardened, "n")); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	if _, err := s.GetOrder(ctx, ids[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}

	// Restart without an address: the node's own one is used.
	s2 := openStore(t, Config{Dir: dir})
	if s2.StartKind() != StartRestart || s2.ClusterID() != clusterID || s2.Address() != addr {
		t.Fatalf("restart: %s cluster %s addr %s", s2.StartKind(), s2.ClusterID(), s2.Address())
	}
	for i, id := range ids {
		o, err := s2.GetOrder(ctx, id)
		if err != nil {
			t.Fatalf("order %d lost: %v", i, err)
		}
		if i == 0 && (o.Status != StatusHardened || len(o.HostKeys) != 1) {
			t.Fatalf("reported order after restart: %+v", o)
		}
	}
	if _, err := s2.RecordReport(ctx, report(ids[0], StatusHardened, "n")); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	if v, err := s2.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() {
		t.Fatalf("schema version %d %v", v, err)
	}
	closeStore(t, s2)

	// A different address for the same node is refused by dqlite.
	if s3, err := Open(ctx, Config{Dir: dir, Address: freeAddr(t)}); err == nil {
		closeStore(t, s3)
		t.Fatal("restart with another address succeeded")
	}
}

func TestDataDirRefused(t *testing.T) {
	ctx := ctxT(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// /proc/self is a directory nobody, root included, can create files in.
	for _, dir := range []string{file, filepath.Join(file, "sub"), "/proc/self", ""} {
		_, err := Open(ctx, Config{Dir: dir, Address: freeAddr(t)})
		if !errors.Is(err, ErrDataDir) {
			t.Errorf("Open(%q): err = %v, want ErrDataDir", dir, err)
		}
	}
}

func TestRefuseBootstrapAndAddress(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	_, err := Open(ctx, Config{Dir: dir, Address: freeAddr(t), RefuseBootstrap: true})
	if err == nil {
		t.Fatal("RefuseBootstrap with an empty dir and no join: no error")
	}
	// Nothing was written: the dir is still a fresh one.
	if hasNode, err := CheckDataDir(dir); err != nil || hasNode {
		t.Fatalf("after refusal: hasNode=%v err=%v", hasNode, err)
	}
	for _, addr := range []string{"", "no-port"} {
		if _, err := Open(ctx, Config{Dir: t.TempDir(), Address: addr}); !errors.Is(err, ErrInvalid) {
			t.Errorf("address %q: err = %v, want ErrInvalid", addr, err)
		}
	}
	// A restarted node does not need RefuseBootstrap lifted.
	s := openStore(t, Config{Dir: dir})
	closeStore(t, s)
	s2 := openStore(t, Config{Dir: dir, RefuseBootstrap: true})
	if s2.StartKind() != StartRestart {
		t.Fatalf("restart: %s", s2.StartKind())
	}
}

func TestRole(t *testing.T) {
	s := openStore(t, Config{})
	r, err := s.Role(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Leader || r.Role != "voter" || r.LeaderAddress != s.Address() || r.ID != s.NodeID() {
		t.Fatalf("single node role: %+v", r)
	}
}

// TestConcurrentWrites drives writers from many goroutines at once: the
// store serializes them, so none sees "database is locked".
func TestConcurrentWrites(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	p := mustPutProfile(t, s, "web", "a: 1\n")
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				cid := fmt.Sprintf("c-%d-%d", w, i)
				r, err := s.CreateOrder(ctx, newOrder(p, cid, "h"))
				if err != nil {
					errs <- err
					continue
				}
				if _, err := s.MarkFetched(ctx, r.Order.ID); err != nil {
					errs <- err
				}
				// Readers run beside the writers.
				if _, err := s.CountByStatus(ctx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil || counts[StatusFetched] != workers*each {
		t.Fatalf("counts %v %v, want %d fetched", counts, err, workers*each)
	}
}
