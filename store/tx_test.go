//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
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
		{"connection lost mid-call", fmt.Errorf("call exec-sql (budget 0s): receive: header: %w", io.EOF), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"broken pipe", syscall.EPIPE, true},
		{"closed connection", net.ErrClosed, true},
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
	if got := (RetryPolicy{}).withDefaults(); got != DefaultRetry() {
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

// TestTxRetryRealLock makes dqlite itself refuse a write: another
// connection holds a write transaction open, so the store's transaction
// gets the driver's real "database is locked" error, which must be
// classified as transient and retried until the holder commits.
func TestTxRetryRealLock(t *testing.T) {
	s := openStore(t, Config{})
	ctx := ctxT(t)
	holder, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('holder', 'x')`); err != nil {
		t.Fatal(err)
	}
	// First show the raw error the driver returns, and that it is one the
	// store retries.
	var raw error
	func() {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			raw = err
			return
		}
		defer tx.Rollback()
		_, raw = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('probe', 'x')`)
		if raw == nil {
			raw = tx.Commit()
		}
	}()
	if raw == nil || !retryable(raw) {
		t.Fatalf("second writer beside an open write transaction: err = %v (%T), want a retryable error", raw, raw)
	}
	t.Logf("dqlite's error for a concurrent writer: %v (%#v)", raw, raw)

	go func() {
		time.Sleep(150 * time.Millisecond)
		holder.ExecContext(ctx, `COMMIT`)
	}()
	calls := 0
	start := time.Now()
	err = s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		calls++
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('waiter', 'x')`)
		return err
	})
	if err != nil || calls < 2 {
		t.Fatalf("err = %v after %d calls in %v, want success after retries", err, calls, time.Since(start))
	}
	var n int
	if err := s.tx(ctx, readTx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM meta WHERE key IN ('holder', 'waiter')`).Scan(&n)
	}); err != nil || n != 2 {
		t.Fatalf("rows %d %v, want both writers' rows", n, err)
	}
}

// TestAmbiguousCommit: a commit that went through but reported a
// transient error (a leader change can cut the answer off) is retried by
// the helper; every write method must then recognise its own write and
// answer as if the first commit had been acknowledged, with nothing
// written twice.
func TestAmbiguousCommit(t *testing.T) {
	c := newClock()
	s := openStore(t, Config{Now: c.Now})
	ctx := ctxT(t)
	var failNext bool
	var failures int
	s.commitErr = func() error {
		if failNext {
			failNext = false
			failures++
			return driver.ErrBadConn
		}
		return nil
	}
	ambiguous := func(t *testing.T) {
		t.Helper()
		if failures != 1 {
			t.Fatalf("%d ambiguous commits, want 1", failures)
		}
		failures = 0
	}

	failNext = true
	p, created, err := s.PutProfile(ctx, "web", "application/yaml", []byte("a: 1\n"))
	if err != nil || !created || p.Revision != 1 {
		t.Fatalf("PutProfile: %+v %v %v", p, created, err)
	}
	ambiguous(t)
	if list, _ := s.ListProfiles(ctx); len(list) != 1 || list[0].LatestRevision != 1 {
		t.Fatalf("profiles: %+v", list)
	}

	failNext = true
	n := newOrder(p, "amb", "h")
	r, err := s.CreateOrder(ctx, n)
	if err != nil || r.Existed || r.Order.ID != n.ID {
		t.Fatalf("CreateOrder: %+v %v", r, err)
	}
	ambiguous(t)
	// A client retry is still recognised as one.
	if r, err := s.CreateOrder(ctx, newOrder(p, "amb", "h")); err != nil || !r.Existed || r.Order.ID != n.ID {
		t.Fatalf("client retry: %+v %v", r, err)
	}

	failNext = true
	if first, err := s.MarkFetched(ctx, n.ID); err != nil || !first {
		t.Fatalf("MarkFetched: %v %v", first, err)
	}
	ambiguous(t)

	failNext = true
	if o, err := s.RecordReport(ctx, report(n.ID, StatusHardened, "n")); err != nil || o.Status != StatusHardened {
		t.Fatalf("RecordReport: %+v %v", o, err)
	}
	ambiguous(t)
	// A real replay is still one.
	if _, err := s.RecordReport(ctx, report(n.ID, StatusHardened, "n")); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}

	mustCreate(t, s, newOrder(p, "late-1", "h"))
	mustCreate(t, s, newOrder(p, "late-2", "h"))
	c.Add(time.Hour)
	failNext = true
	if n, err := s.TimeOutOrders(ctx, c.Now()); err != nil || n != 2 {
		t.Fatalf("TimeOutOrders: %d %v, want 2", n, err)
	}
	ambiguous(t)

	failNext = true
	if o, err := s.CancelOrder(ctx, n.ID); err != nil || o.RevokedAt.IsZero() || o.Status != StatusHardened {
		t.Fatalf("CancelOrder: %+v %v", o, err)
	}
	ambiguous(t)

	counts, err := s.CountByStatus(ctx)
	if err != nil || counts[StatusHardened] != 1 || counts[StatusTimedOut] != 2 || counts[StatusCreated] != 0 {
		t.Fatalf("counts %v %v", counts, err)
	}
}
