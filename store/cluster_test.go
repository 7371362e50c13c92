//go:build cgo && libsqlite3

package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestLeaderLoss forms a three-node cluster in this process, stops the
// leader without a handover, and writes through a survivor at once: the
// store must ride out the election on its own (real not-leader / no-leader
// errors from the driver, retried), and everything acknowledged before the
// loss must still be there. The cluster issue repeats this with SIGKILL
// across processes; this is the store's own proof.
func TestLeaderLoss(t *testing.T) {
	logs := &syncBuffer{}
	lat := Config{NetworkLatency: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a := openStore(t, lat)
	bCfg, cCfg := lat, lat
	bCfg.Join = []string{a.Address()}
	cCfg.Join = []string{a.Address()}
	b := openStore(t, bCfg)
	c := openStore(t, cCfg)
	ctx := ctxT(t)

	// Wait until all three are voters, so losing one keeps a quorum.
	deadline := time.Now().Add(20 * time.Second)
	for {
		voters := 0
		for _, s := range []*Store{a, b, c} {
			if r, err := s.Role(ctx); err == nil && r.Role == "voter" {
				voters++
			}
		}
		if voters == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d voters after 20 s", voters)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := mustPutProfile(t, b, "web", "a: 1\n")
	var acked []string
	for i := range 10 {
		acked = append(acked, mustCreate(t, c, newOrder(p, fmt.Sprintf("before-%d", i), "h")).ID)
	}

	r, err := b.Role(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leader *Store
	var survivors []*Store
	for _, s := range []*Store{a, b, c} {
		if s.Address() == r.LeaderAddress {
			leader = s
		} else {
			survivors = append(survivors, s)
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is none of the nodes", r.LeaderAddress)
	}
	// Writers on both survivors run through the loss; none may see an
	// error, since riding out the election is the store's job.
	type result struct {
		ids     []string
		firstAt time.Time // first acknowledged write after the stop
		err     error
	}
	stopped := make(chan struct{}) // closed when the leader is gone
	var stopAt time.Time           // written before the close
	results := make(chan result, len(survivors))
	for w, s := range survivors {
		go func() {
			var res result
			after := false
			for i := range 400 {
				select {
				case <-stopped:
					after = true
				default:
				}
				r, err := s.CreateOrder(ctx, newOrder(p, fmt.Sprintf("w%d-%d", w, i), "h"))
				if err != nil {
					res.err = fmt.Errorf("writer %d, write %d: %w", w, i, err)
					break
				}
				res.ids = append(res.ids, r.Order.ID)
				if after && res.firstAt.IsZero() {
					res.firstAt = time.Now()
				}
				if !res.firstAt.IsZero() && time.Since(res.firstAt) > 300*time.Millisecond {
					break
				}
			}
			results <- res
		}()
	}
	time.Sleep(200 * time.Millisecond)
	// Stop the leader the hard way: no handover, the node just goes.
	stopAt = time.Now()
	leader.closed.Store(true)
	leader.db.Close()
	leader.app.Close()
	close(stopped)
	for range survivors {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.firstAt.IsZero() {
			t.Fatalf("a writer saw no write after the stop (%d writes)", len(res.ids))
		}
		t.Logf("writer: %d orders, first acknowledged %v after the stop", len(res.ids), res.firstAt.Sub(stopAt).Round(time.Millisecond))
		acked = append(acked, res.ids...)
	}
	t.Logf("%d transaction retries logged", strings.Count(logs.String(), "transaction retry"))
	for _, s := range survivors {
		for _, id := range acked {
			if _, err := s.GetOrder(ctx, id); err != nil {
				t.Fatalf("node %s: acknowledged order %s: %v", s.Address(), id, err)
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
