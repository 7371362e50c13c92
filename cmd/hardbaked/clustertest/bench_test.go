//go:build cgo && libsqlite3

package clustertest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/store"
)

// TestClusterBenchmark measures, side by side in one run, orders per
// second through the API of one node and of a three-node cluster, raw
// single-row dqlite inserts on the same node and cluster, and the
// failover time over ten leader kills. It is a measurement, not a check,
// and runs only with HARDBAKE_CLUSTER_BENCH=1 (scripts/bench-cluster.sh);
// the table goes to the test log and to $HARDBAKE_CLUSTER_BENCH_OUT.
func TestClusterBenchmark(t *testing.T) {
	if os.Getenv("HARDBAKE_CLUSTER_BENCH") != "1" {
		t.Skip("HARDBAKE_CLUSTER_BENCH=1 runs the cluster benchmark (about 3 minutes)")
	}
	const n = 300 // per client, per measurement
	var rows []string
	row := func(what string, s stats) {
		r := fmt.Sprintf("| %s | %d | %.0f | %s | %s |", what, s.n, s.perSecond, s.p50.Round(10*time.Microsecond), s.p99.Round(10*time.Microsecond))
		t.Log(r)
		rows = append(rows, r)
	}
	a := newAPI(10 * time.Second)

	// One node (with the cluster certificate, as a cluster's first node).
	e1 := newEnv(t)
	one := e1.startCluster(t, 1)
	putProfile(t, a, one.nodes[0])
	raw1 := openRaw(t, one.peers())
	row("raw dqlite insert, 1 node, 1 client", measure(t, 1, n, func(ctx context.Context, _, i int) error { return raw1.Insert(ctx, []byte("0123456789abcdef")) }))
	row("POST /v1/orders, 1 node, 1 client", measure(t, 1, n, orderOp(a, one, "one-a")))
	row("POST /v1/orders, 1 node, 3 clients", measure(t, 3, n, orderOp(a, one, "one-b")))
	raw1.Close()
	if err := one.nodes[0].kill(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Three nodes; each client writes through its own node.
	e3 := newEnv(t)
	three := e3.startCluster(t, 3)
	putProfile(t, a, three.nodes[0])
	raw3 := openRaw(t, three.peers())
	row("raw dqlite insert, 3-node cluster, 1 client (to the leader)", measure(t, 1, n, func(ctx context.Context, _, i int) error { return raw3.Insert(ctx, []byte("0123456789abcdef")) }))
	row("POST /v1/orders, 3-node cluster, 1 client through a follower", measure(t, 1, n, orderOpVia(a, three, "three-a", follower(t, three))))
	row("POST /v1/orders, 3-node cluster, 3 clients, one per node", measure(t, 3, n, orderOp(a, three, "three-b")))
	raw3.Close()
	for _, n := range three.nodes {
		_ = n.kill(t, syscall.SIGKILL)
	}

	// Failover on a fresh cluster: the throughput runs above leave ~2,000
	// orders (each with its rendered seed files) behind, and a restarted
	// node's catch-up grows with the database (dqlite snapshots hold the
	// whole database file).
	e4 := newEnv(t)
	fresh := e4.startCluster(t, 3)
	putProfile(t, a, fresh.nodes[0])
	led := newLedger()
	res := runFailover(t, fresh, a, led, 10, 3, 300, 10*time.Minute)
	checkExactlyOnce(t, a, fresh, led)
	med, worst := summarize(res.recoveries)
	cm, cw := summarize(res.catchUps)
	fail := fmt.Sprintf("%d SIGKILLs of the leader under load (3 writers): writes acknowledged again after %s — median %s, worst %s; the restarted node caught up (leadership transferable to it) after %s — median %s, worst %s; %d orders acknowledged (%d after a client retry), none lost, none twice; %d read-after-write checks; %s in all",
		len(res.recoveries), fmtDurations(res.recoveries), med.Round(time.Millisecond), worst.Round(time.Millisecond), fmtDurations(res.catchUps), cm.Round(time.Millisecond), cw.Round(time.Millisecond), res.orders, res.retried, res.rawChecks, res.elapsed.Round(time.Second))
	t.Log(fail)
	loads := strings.Join(res.loads, "; ")
	out := "| what | ops | ops/s | p50 | p99 |\n| --- | ---: | ---: | ---: | ---: |\n" + strings.Join(rows, "\n") + "\n\n" + fail + "\n\nmachine load at the kills: " + loads + "\n"
	if p := os.Getenv("HARDBAKE_CLUSTER_BENCH_OUT"); p != "" {
		must(t, os.WriteFile(p, []byte(out), 0o644))
	}
}

type stats struct {
	n         int
	perSecond float64
	p50, p99  time.Duration
	elapsed   time.Duration
}

// measure runs op perClient times in each of `clients` goroutines at once
// and reports the aggregate throughput and latency percentiles. Bounded:
// 60 s at most.
func measure(t *testing.T, clients, perClient int, op func(ctx context.Context, client, i int) error) stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := store.Measure(ctx, perClient, 0, func(ctx context.Context, i int) error {
				t0 := time.Now()
				err := op(ctx, c, i)
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
				return err
			})
			_ = st
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("measure: %v", firstErr)
	}
	s := stats{n: len(lat), elapsed: time.Since(start)}
	slices.Sort(lat)
	s.perSecond = float64(s.n) / s.elapsed.Seconds()
	s.p50 = lat[(len(lat)-1)*50/100]
	s.p99 = lat[(len(lat)-1)*99/100]
	return s
}

func orderOp(a *api, c *cluster, prefix string) func(ctx context.Context, client, i int) error {
	return func(ctx context.Context, client, i int) error {
		_, err := a.createOrder(ctx, c.nodes[client%len(c.nodes)], fmt.Sprintf("%s-%d-%d", prefix, client, i))
		return err
	}
}

func orderOpVia(a *api, c *cluster, prefix string, n *node) func(ctx context.Context, client, i int) error {
	return func(ctx context.Context, client, i int) error {
		_, err := a.createOrder(ctx, n, fmt.Sprintf("%s-%d-%d", prefix, client, i))
		return err
	}
}

func follower(t *testing.T, c *cluster) *node {
	l := c.leader(t)
	for _, n := range c.nodes {
		if n != l {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

func openRaw(t *testing.T, p store.Peers) *store.RawClient {
	t.Helper()
	r, err := p.OpenRaw(ctxT(t, 20*time.Second))
	must(t, err)
	return r
}
