package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	ctx := context.Background()
	st, err := Measure(ctx, 100, 0, func(ctx context.Context, i int) error {
		if i >= 98 {
			time.Sleep(2 * time.Millisecond) // the two slowest: p99 is one of them
		}
		return nil
	})
	if err != nil || st.N != 100 || st.PerSecond <= 0 || st.P50 > st.P99 || st.P99 < time.Millisecond {
		t.Fatalf("%+v %v", st, err)
	}
	boom := errors.New("boom")
	st, err = Measure(ctx, 10, 0, func(ctx context.Context, i int) error {
		if i == 4 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || st.N != 4 {
		t.Fatalf("error run: %+v %v", st, err)
	}
	st, err = Measure(ctx, 1_000_000, 30*time.Millisecond, func(ctx context.Context, i int) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil || st.N == 0 || st.N > 100 || st.Elapsed > time.Second {
		t.Fatalf("time-bounded run: %+v %v", st, err)
	}
}
