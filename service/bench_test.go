//go:build cgo && libsqlite3

package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// The benchmarks record the figures of docs/BENCHMARKS.md, side by side in
// one run:
//
//	go test -tags libsqlite3 -run '^$' -bench . -benchtime 2s ./service
//
// Each reports ops/s and p50/p99 latency (ms) as custom metrics.

// benchEnv is newEnv for benchmarks: one node, one service.
func benchEnv(b *testing.B) *env {
	b.Helper()
	e := &env{dir: b.TempDir(), clock: &testClock{t: time.Now().UTC()}, agents: fakeAgents(), limit: DefaultReportLimit}
	e.addr = nodeAddr(b, e.dir)
	e.seedWork = tmpfsDir(b)
	var err error
	if e.secrets, err = LoadOrCreateSecret(e.dir + "/secret"); err != nil {
		b.Fatal(err)
	}
	e.t = b
	e.open(e.addr)
	b.Cleanup(e.close)
	// A client keeps a connection per concurrent request, as an API
	// client with a pool does (the default keeps 2 idle per host: with
	// 4 or 16 clients the others would dial anew every round).
	e.http.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return e
}

// discard reads the rest of a response body and closes it: a body closed
// unread makes the client drop the connection, so the next request would
// pay a new TCP connection, which no client with keep-alive pays.
func discard(res *http.Response) {
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// tmpfsDir is a private directory on a tmpfs (/dev/shm), where seed.iso
// builds stage their files as under the shipped systemd units
// (RuntimeDirectory=, a tmpfs under /run); the system temp dir when there
// is no /dev/shm.
func tmpfsDir(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "hardbaked-bench-*")
	if err != nil {
		b.Logf("no tmpfs for the seed workspace (%v): using the system temp dir", err)
		return ""
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report sets ops/s, p50 and p99 from the run's latencies.
func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(l.d[(len(l.d)-1)*50/100])/1e6, "p50-ms")
	b.ReportMetric(float64(l.d[(len(l.d)-1)*99/100])/1e6, "p99-ms")
}

// BenchmarkOrders compares orders created through the HTTP API (validate,
// render, idempotency check, insert) with raw single-row inserts of the
// same number of bytes on the same dqlite node.
func BenchmarkOrders(b *testing.B) {
	e := benchEnv(b)
	want(e.t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(b)), http.StatusCreated)
	key := sshKey(b)
	// The raw row carries as many bytes as an order row does.
	probe := e.createOrder(orderBody(b, "probe", key, ""))
	ud := e.op("GET", "/v1/orders/"+probe.ID+"/user-data", nil).body
	md := e.op("GET", "/v1/orders/"+probe.ID+"/meta-data", nil).body
	payload := bytes.Repeat([]byte{'x'}, len(ud)+len(md)+600)
	seq := 0

	b.Run("raw-insert", func(b *testing.B) {
		var lat latencies
		ctx := context.Background()
		start := time.Now()
		for b.Loop() {
			t0 := time.Now()
			if err := e.store.RawInsert(ctx, payload); err != nil {
				b.Fatal(err)
			}
			lat.add(time.Since(t0))
		}
		lat.report(b, time.Since(start))
	})
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("api-post-order/clients=%d", clients), func(b *testing.B) {
			var lat latencies
			bodies := make([][]byte, b.N)
			for i := range bodies {
				seq++
				bodies[i] = orderBody(b, fmt.Sprintf("bench-%d", seq), key, fmt.Sprintf(`, "instance_id": "b-%d"`, seq))
			}
			work := make(chan []byte)
			var wg sync.WaitGroup
			var failed sync.Once
			b.ResetTimer()
			start := time.Now()
			for range clients {
				wg.Go(func() {
					for body := range work {
						t0 := time.Now()
						res, err := e.send("POST", "/v1/orders", body)
						if err == nil {
							discard(res)
						}
						if err != nil || res.StatusCode != http.StatusCreated {
							failed.Do(func() { b.Errorf("POST: %v %v", err, res) })
							continue
						}
						lat.add(time.Since(t0))
					}
				})
			}
			for _, body := range bodies {
				work <- body
			}
			close(work)
			wg.Wait()
			lat.report(b, time.Since(start))
		})
	}
}

// BenchmarkOrdersInterleaved measures both sides in alternating rounds
// (a batch of raw inserts, then as many orders through the API), so a
// shared machine's load hits both alike; it reports each side's rate and
// the API's share of the raw rate.
func BenchmarkOrdersInterleaved(b *testing.B) {
	e := benchEnv(b)
	want(e.t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(b)), http.StatusCreated)
	key := sshKey(b)
	probe := e.createOrder(orderBody(b, "probe", key, ""))
	ud := e.op("GET", "/v1/orders/"+probe.ID+"/user-data", nil).body
	md := e.op("GET", "/v1/orders/"+probe.ID+"/meta-data", nil).body
	payload := bytes.Repeat([]byte{'x'}, len(ud)+len(md)+600)
	seq := 0
	// Raw inserts have one writer (concurrent raw writers get "database
	// is locked"), so a round of N is N inserts in a row; the API's N
	// orders of a round arrive at once, as from N clients, and the store
	// may write them in one transaction (group commit).
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ctx := context.Background()
			var raw, api latencies
			var rawTime, apiTime time.Duration
			for b.Loop() {
				t0 := time.Now()
				for range clients {
					t1 := time.Now()
					if err := e.store.RawInsert(ctx, payload); err != nil {
						b.Fatal(err)
					}
					raw.add(time.Since(t1))
				}
				rawTime += time.Since(t0)
				t0 = time.Now()
				var wg sync.WaitGroup
				for range clients {
					seq++
					body := orderBody(b, fmt.Sprintf("il-%d", seq), key, fmt.Sprintf(`, "instance_id": "il-%d"`, seq))
					wg.Go(func() {
						t1 := time.Now()
						res, err := e.send("POST", "/v1/orders", body)
						if err != nil {
							b.Error(err)
							return
						}
						discard(res)
						if res.StatusCode != http.StatusCreated {
							b.Errorf("POST: %d", res.StatusCode)
						}
						api.add(time.Since(t1))
					})
				}
				wg.Wait()
				apiTime += time.Since(t0)
			}
			rawRate := float64(len(raw.d)) / rawTime.Seconds()
			apiRate := float64(len(api.d)) / apiTime.Seconds()
			b.ReportMetric(rawRate, "raw-ops/s")
			b.ReportMetric(apiRate, "api-ops/s")
			b.ReportMetric(100*apiRate/rawRate, "api/raw-%")
			slices.Sort(raw.d)
			slices.Sort(api.d)
			b.ReportMetric(float64(raw.d[(len(raw.d)-1)*50/100])/1e6, "raw-p50-ms")
			b.ReportMetric(float64(raw.d[(len(raw.d)-1)*99/100])/1e6, "raw-p99-ms")
			b.ReportMetric(float64(api.d[(len(api.d)-1)*50/100])/1e6, "api-p50-ms")
			b.ReportMetric(float64(api.d[(len(api.d)-1)*99/100])/1e6, "api-p99-ms")
		})
	}
}

// BenchmarkSeedISO compares seed.iso answers with cloud-localds runs for
// the same user-data and meta-data (an agent: url order, so the ISO holds
// the same two files).
func BenchmarkSeedISO(b *testing.B) {
	e := benchEnv(b)
	want(e.t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(b)), http.StatusCreated)
	key := sshKey(b)
	o := e.createOrder(orderBody(b, "iso", key, `, "agent": "url"`))
	ud := e.op("GET", "/v1/orders/"+o.ID+"/user-data", nil).body
	md := e.op("GET", "/v1/orders/"+o.ID+"/meta-data", nil).body
	seq := 0
	get := func(b *testing.B, lat *latencies, id string) {
		t0 := time.Now()
		res, err := e.send("GET", "/v1/orders/"+id+"/seed.iso", nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := bytes.NewBuffer(nil).ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || n < 32*1024 {
			b.Fatalf("seed.iso: %d, %d bytes", res.StatusCode, n)
		}
		lat.add(time.Since(t0))
	}
	b.Run("api-seed-iso/cached", func(b *testing.B) {
		var lat latencies
		get(b, &latencies{}, o.ID) // builds and caches it
		start := time.Now()
		for b.Loop() {
			get(b, &lat, o.ID)
		}
		lat.report(b, time.Since(start))
	})
	b.Run("api-seed-iso/first-fetch", func(b *testing.B) {
		// Every request is the first for its order: the ISO is built.
		ids := make([]string, b.N)
		for i := range ids {
			seq++
			ids[i] = e.createOrder(orderBody(b, fmt.Sprintf("iso-%d", seq), key, fmt.Sprintf(`, "agent": "url", "instance_id": "iso-%d"`, seq))).ID
		}
		var lat latencies
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			get(b, &lat, ids[i])
		}
		lat.report(b, time.Since(start))
	})
	b.Run("cloud-localds", func(b *testing.B) {
		tool, err := exec.LookPath("cloud-localds")
		if err != nil {
			if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
				b.Fatal("cloud-localds not found")
			}
			b.Skip("cloud-localds not found")
		}
		dir := b.TempDir()
		udp, mdp := filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data")
		if err := os.WriteFile(udp, ud, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(mdp, md, 0o644); err != nil {
			b.Fatal(err)
		}
		var lat latencies
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			out := filepath.Join(dir, fmt.Sprintf("seed-%d.iso", i%4))
			if msg, err := exec.Command(tool, out, udp, mdp).CombinedOutput(); err != nil {
				b.Fatalf("cloud-localds: %v\n%s", err, msg)
			}
			lat.add(time.Since(t0))
		}
		lat.report(b, time.Since(start))
	})
}
