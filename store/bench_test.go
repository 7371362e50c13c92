//go:build cgo && libsqlite3

package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The service's benchmark compares orders created through the API with
// raw single-row dqlite inserts on the same node. These two benchmarks are
// the store's half of it, on one node in one run:
//
//	go test -tags libsqlite3 -run '^$' -bench 'RawInsert|CreateOrder' -benchtime 2000x ./store
//
// The payload of the raw insert is the size of an order's stored bytes, so
// the difference is the store's own work (idempotency read, profile check,
// retry helper, write slot), not the amount of data.

func benchStore(b testing.TB) (*Store, Profile) {
	s := openStore(b, Config{})
	return s, mustPutProfile(b, s, "web", "a: 1\n")
}

func orderSize(n NewOrder) int {
	return len(n.Request) + len(n.UserData) + len(n.MetaData) + len(n.ReportKey) + 64
}

func BenchmarkRawInsert(b *testing.B) {
	s, p := benchStore(b)
	payload := make([]byte, orderSize(newOrder(p, "size", "h")))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := s.RawInsert(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateOrder(b *testing.B) {
	s, p := benchStore(b)
	ctx := context.Background()
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		if _, err := s.CreateOrder(ctx, newOrder(p, fmt.Sprintf("bench-%d", i), "h")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStoreVsRaw runs both sides with Measure on one node and logs them
// side by side (go test -v -run StoreVsRaw). It is a smoke test of the
// helper path the API benchmark reuses: bounded to 200 operations or 3 s
// a side, and it only fails if an operation fails, never on speed.
func TestStoreVsRaw(t *testing.T) {
	s, p := benchStore(t)
	ctx := ctxT(t)
	payload := make([]byte, orderSize(newOrder(p, "size", "h")))
	raw, err := Measure(ctx, 200, 3*time.Second, func(ctx context.Context, i int) error {
		return s.RawInsert(ctx, payload)
	})
	if err != nil {
		t.Fatal(err)
	}
	orders, err := Measure(ctx, 200, 3*time.Second, func(ctx context.Context, i int) error {
		_, err := s.CreateOrder(ctx, newOrder(p, fmt.Sprintf("m-%d", i), "h"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw inserts:  %v", raw)
	t.Logf("CreateOrder:  %v (%.0f%% of raw)", orders, 100*orders.PerSecond/raw.PerSecond)
	if n, err := s.CountByStatus(ctx); err != nil || n[StatusCreated] != int64(orders.N) {
		t.Fatalf("%d orders stored, %d acknowledged (%v)", n[StatusCreated], orders.N, err)
	}
}

// BenchmarkReadOrder reads one order of each row size from a single node,
// with the node on plain TCP (libdqlite's own socket, as a single node ran
// before LocalAddress, and as a data directory created then still runs),
// on a local abstract unix socket (LocalAddress: a single node now) and
// behind go-dqlite's TLS proxy, and reports the percentiles: rows past one
// response buffer stall ~40 ms on plain TCP (Nagle + delayed ACK;
// docs/BENCHMARKS.md).
//
//	go test -tags libsqlite3 -run '^$' -bench ReadOrder -benchtime 200x ./store
func BenchmarkReadOrder(b *testing.B) {
	for _, name := range []string{"plain-tcp", "local-socket", "tls-proxy"} {
		cfg := Config{Dir: b.TempDir()}
		switch name {
		case "local-socket":
			addr, err := LocalAddress(cfg.Dir)
			if err != nil {
				b.Fatal(err)
			}
			cfg.Address = addr
		case "tls-proxy":
			ct, err := NewClusterTLS(testCert(b, "node"))
			if err != nil {
				b.Fatal(err)
			}
			cfg.TLS = ct
		}
		s := openStore(b, cfg)
		p := mustPutProfile(b, s, "web", "a: 1\n")
		for _, size := range []int{100, 14000, 70000} {
			n := newOrder(p, fmt.Sprintf("read-%d", size), "h")
			n.UserData = make([]byte, size)
			res, err := s.CreateOrder(context.Background(), n)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/row=%d", name, size), func(b *testing.B) {
				var d []time.Duration
				for b.Loop() {
					t0 := time.Now()
					if _, err := s.GetOrder(context.Background(), res.Order.ID); err != nil {
						b.Fatal(err)
					}
					d = append(d, time.Since(t0))
				}
				slices.Sort(d)
				for _, q := range []int{50, 70, 99} {
					b.ReportMetric(float64(d[(len(d)-1)*q/100])/1e6, fmt.Sprintf("p%d-ms", q))
				}
			})
		}
	}
}
