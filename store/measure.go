package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Stats summarises a measured run of one operation.
type Stats struct {
	N         int           // operations completed
	Elapsed   time.Duration // wall time of the whole run
	PerSecond float64       // N / Elapsed
	P50, P99  time.Duration // per-operation latency
}

func (s Stats) String() string {
	return fmt.Sprintf("%d ops in %s: %.0f/s, p50 %s, p99 %s",
		s.N, s.Elapsed.Round(time.Millisecond), s.PerSecond, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
}

// Measure runs op up to n times, one after another, stopping early at
// maxTime (0: no time bound), and returns throughput and latency
// percentiles. The first error stops the run and is returned with the
// stats so far. Benchmarks use it on both sides of a comparison (raw
// inserts, store calls, API requests), so the figures are computed the same
// way.
func Measure(ctx context.Context, n int, maxTime time.Duration, op func(ctx context.Context, i int) error) (Stats, error) {
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	var err error
	for i := range n {
		if maxTime > 0 && time.Since(start) > maxTime {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		t0 := time.Now()
		if err = op(ctx, i); err != nil {
			err = fmt.Errorf("operation %d: %w", i, err)
			break
		}
		lat = append(lat, time.Since(t0))
	}
	st := Stats{N: len(lat), Elapsed: time.Since(start)}
	if st.N > 0 {
		st.PerSecond = float64(st.N) / st.Elapsed.Seconds()
		slices.Sort(lat)
		st.P50 = lat[(st.N-1)*50/100]
		st.P99 = lat[(st.N-1)*99/100]
	}
	return st, err
}
