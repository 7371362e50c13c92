//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	dqlite "github.com/canonical/go-dqlite/driver"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"bad conn (leader change, lost connection)", driver.ErrBadConn, true},
		{"wrapped bad conn", fmt.Errorf("commit: %w", driver.ErrBadConn), true},
		{"no leader", dqlite.ErrNoAvailableLeader, true},
		{"busy", dqlite.Error{Code: dqlite.ErrBusy, Message: "database is busy"}, true},
		{"busy recovery", dqlite.Error{Code: dqlite.ErrBusyRecovery}, true},
		{"busy snapshot", dqlite.Error{Code: dqlite.ErrBusySnapshot}, true},
		{"locked", dqlite.Error{Code: sqliteLocked, Message: "database is locked"}, true},
		{"locked shared cache", dqlite.Error{Code: sqliteLocked | 1<<8}, true},
		{"not leader", dqlite.Error{Code: ioErrNotLeader}, true},
		{"leadership lost", dqlite.Error{Code: ioErrLeadershipLost}, true},
		{"not leader (legacy)", dqlite.Error{Code: ioErrNotLeaderLegacy}, true},
		{"leadership lost (legacy)", dqlite.Error{Code: ioErrLeadershipLostLegacy}, true},
		{"wrapped busy", fmt.Errorf("insert: %w", dqlite.Error{Code: dqlite.ErrBusy}), true},
		{"other I/O error", dqlite.Error{Code: sqliteIOErr}, false},
		{"constraint", dqlite.Error{Code: 19, Message: "UNIQUE constraint failed"}, false},
		{"syntax", dqlite.Error{Code: 1, Message: "syntax error"}, false},
		{"conflict", ErrConflict, false},
		{"not found", ErrNotFound, false},
		{"canceled", context.Canceled, false},
		{"deadline", context.DeadlineExceeded, false},
		{"canceled while bad conn", errors.Join(context.Canceled, driver.ErrBadConn), false},
		{"no rows", sql.ErrNoRows, false},
		{"nil", nil, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, MaxElapsed: time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond}
	for attempt, max := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 40, 30: 40} {
		max *= time.Millisecond
		for range 50 {
			if d := p.delay(attempt); d < max/2 || d > max {
				t.Fatalf("delay(%d) = %v, want within [%v, %v]", attempt, d, max/2, max)
			}
		}
	}
	if got := (RetryPolicy{}).withDefaults(); got != DefaultRetry {
		t.Fatalf("defaults: %+v", got)
	}
}

// TestTxRetry runs the helper against a real node with functions that fail
// on purpose: transient failures are retried until the transaction
// commits, other errors are returned at once, and both bounds hold.
func TestTxRetry(t *testing.T) {
	s := openStore(t, Config{Retry: RetryPolicy{MaxAttempts: 4, MaxElapsed: 2 * time.Second, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	ctx := ctxT(t)
	busy := dqlite.Error{Code: dqlite.ErrBusy, Message: "database is busy"}

	t.Run("transient then success", func(t *testing.T) {
		calls := 0
		err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
			calls++
			// Each attempt writes; only the committed one may stay.
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, 'x')`, fmt.Sprintf("retry-%d", calls)); err != nil {
				return err
			}
			if calls < 3 {
				return busy
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err = %v after %d calls, want success after 3", err, calls)
		}
		var n int
		s.tx(ctx, readTx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM meta WHERE key LIKE 'retry-%'`).Scan(&n)
		})
		if n != 1 {
			t.Fatalf("%d rows from the attempts, want only the committed one", n)
		}
	})
	t.Run("final error not retried", func(t *testing.T) {
		calls := 0
		err := s.tx(ctx, writeTx, func(tx *sql.Tx) error { calls++; return ErrConflict })
		if !errors.Is(err, ErrConflict) || calls != 1 {
			t.Fatalf("err = %v after %d calls", err, calls)
		}
		calls = 0
		err = s.tx(ctx, writeTx, func(tx *sql.Tx) error {
			calls++
			_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('cluster_id', 'dup')`)
			return err
		})
		if err == nil || retryable(err) || calls != 1 {
			t.Fatalf("constraint violation: err = %v after %d calls", err, calls)
		}
	})
	t.Run("attempt bound", func(t *testing.T) {
		calls := 0
		err := s.tx(ctx, writeTx, func(tx *sql.Tx) error { calls++; return busy })
		if !errors.As(err, new(dqlite.Error)) || calls != 4 {
			t.Fatalf("err = %v after %d calls, want the busy error after 4", err, calls)
		}
	})
	t.Run("time bound", func(t *testing.T) {
		slow := openStore(t, Config{Retry: RetryPolicy{MaxAttempts: 1000, MaxElapsed: 300 * time.Millisecond, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}})
		start := time.Now()
		calls := 0
		err := slow.tx(ctx, writeTx, func(tx *sql.Tx) error { calls++; return busy })
		if el := time.Since(start); !errors.As(err, new(dqlite.Error)) || el > time.Second || calls < 3 || calls > 30 {
			t.Fatalf("err = %v after %d calls in %v", err, calls, el)
		}
	})
	t.Run("context ends the retries", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		err := s.tx(cctx, writeTx, func(tx *sql.Tx) error { calls++; cancel(); return busy })
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("err = %v after %d calls", err, calls)
		}
	})
	t.Run("one writer at a time", func(t *testing.T) {
		inside := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- s.tx(ctx, writeTx, func(tx *sql.Tx) error { close(inside); <-release; return nil })
		}()
		<-inside
		// A second writer waits for the slot; its context ends first.
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := s.tx(wctx, writeTx, func(tx *sql.Tx) error { t.Error("second writer ran beside the first"); return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second writer: %v", err)
		}
		// Readers are not held up by the writer.
		if err := s.tx(ctx, readTx, func(tx *sql.Tx) error { return nil }); err != nil {
			t.Errorf("reader: %v", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
