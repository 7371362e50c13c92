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
	"time"

	dqlite "github.com/canonical/go-dqlite/driver"
)

// RetryPolicy bounds how a transaction is retried on a transient error.
// Both bounds apply: whichever is reached first ends the retries.
type RetryPolicy struct {
	MaxAttempts int           // attempts in all, the first included
	MaxElapsed  time.Duration // from the first attempt; no retry starts after it
	BaseDelay   time.Duration // delay before the second attempt, doubling after
	MaxDelay    time.Duration // cap of one delay (before jitter)
}

// DefaultRetry is the policy Open uses for zero fields. It covers a leader
// election with dqlite's default timing (writes resume about 5 s after the
// leader dies) with room to spare, while a lone busy database is retried
// within milliseconds.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{
		MaxAttempts: 40,
		MaxElapsed:  15 * time.Second,
		BaseDelay:   5 * time.Millisecond,
		MaxDelay:    500 * time.Millisecond,
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	defaultRetry := DefaultRetry()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultRetry.MaxAttempts
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = defaultRetry.MaxElapsed
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = defaultRetry.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = defaultRetry.MaxDelay
	}
	return p
}

// delay is the jittered pause after the given (1-based) failed attempt.
func (p RetryPolicy) delay(attempt int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	return jitter(min(d, p.MaxDelay))
}

// SQLite result codes (the low byte of an extended code) and the extended
// codes dqlite 1.11 uses for "this node is not / no longer the leader".
// go-dqlite v1.11.5's driver keeps the latter unexported
// (driver/driver.go: errIoErrNotLeader ...) and usually turns them into
// driver.ErrBadConn, but they are matched here too in case one surfaces as
// a driver.Error.
const (
	sqliteBusy                = 5
	sqliteLocked              = 6
	sqliteIOErr               = 10
	ioErrNotLeader            = sqliteIOErr | 40<<8
	ioErrLeadershipLost       = sqliteIOErr | 41<<8
	ioErrNotLeaderLegacy      = sqliteIOErr | 32<<8
	ioErrLeadershipLostLegacy = sqliteIOErr | 33<<8
)

// retryable reports whether err is transient: the same transaction may
// succeed if run again. Everything else (constraint violations, the
// store's own sentinel errors, a cancelled context) is final.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// The driver's verdict for a lost connection or a leader change
	// (driver/driver.go driverError); database/sql already retried
	// opening, so here it means a transaction was cut off.
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	// No leader found (election in progress).
	if errors.Is(err, dqlite.ErrNoAvailableLeader) {
		return true
	}
	// The connection to the leader broke mid-call. The driver maps only
	// some of these to ErrBadConn: when the leader goes away during a
	// statement it returns the protocol's wrapped io.EOF as it is
	// ("call exec-sql (budget 0s): receive: header: EOF"; seen in
	// TestLeaderLoss).
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var de dqlite.Error
	if errors.As(err, &de) {
		switch de.Code {
		case ioErrNotLeader, ioErrLeadershipLost, ioErrNotLeaderLegacy, ioErrLeadershipLostLegacy:
			return true
		}
		switch de.Code & 0xff {
		case sqliteBusy, sqliteLocked:
			return true
		}
	}
	return false
}

type txKind int

const (
	readTx txKind = iota
	writeTx
)

// tx runs fn in a transaction and commits it. With one, it is the only way the store
// talks to the database. A write transaction first waits for the process's
// single write slot. A transient error (see retryable) reruns fn in a new
// transaction within s.retry; fn must therefore be safe to rerun, and
// because a commit cut off by a leader change may still have been applied,
// fn's effect must be idempotent or detected on the rerun (each write
// method says how).
func (s *Store) tx(ctx context.Context, kind txKind, fn func(*sql.Tx) error) error {
	release, err := s.slot(ctx, kind)
	if err != nil {
		return err
	}
	defer release()
	return s.runTx(ctx, fn)
}

// slot refuses work on a closed store and, for a write, waits for the
// process's single write slot; release gives it back.
func (s *Store) slot(ctx context.Context, kind txKind) (release func(), err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if kind != writeTx {
		return func() {}, nil
	}
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.closed.Load() {
		<-s.writeSem
		return nil, ErrClosed
	}
	return func() { <-s.writeSem }, nil
}

// querier is where statements run: a transaction, or the database itself
// for a statement that is a transaction of its own (see one).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// one is tx for work that needs no transaction around it: a single
// statement, which dqlite runs as a transaction of its own, or reads
// whose answers do not have to come from one snapshot. It saves BEGIN and
// COMMIT, each a round trip to the leader (for a write, COMMIT is where
// the raft round happens; a lone statement has it all the same). The
// retries, the write slot, and the rules for fn are tx's.
func (s *Store) one(ctx context.Context, kind txKind, fn func(querier) error) error {
	release, err := s.slot(ctx, kind)
	if err != nil {
		return err
	}
	defer release()
	return s.runOne(ctx, kind, fn)
}

// runOne is one without the write slot: the caller holds it for a write.
func (s *Store) runOne(ctx context.Context, kind txKind, fn func(querier) error) error {
	return s.retried(ctx, func() error {
		if err := fn(s.db); err != nil {
			return err
		}
		if kind == writeTx && s.commitErr != nil {
			// Tests: as in txOnce, a write that went through but
			// reported an error.
			if err := s.commitErr(); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
		return nil
	})
}

// runTx is tx without the write slot: the caller holds it for a write.
func (s *Store) runTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.retried(ctx, func() error { return s.txOnce(ctx, fn) })
}

// retried runs attempt until it succeeds, fails for good (see retryable) or
// s.retry's bounds are reached.
func (s *Store) retried(ctx context.Context, attempt func() error) error {
	start := time.Now()
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		if !retryable(err) {
			return err
		}
		if n >= s.retry.MaxAttempts {
			return fmt.Errorf("transaction failed %d times: %w", n, err)
		}
		d := s.retry.delay(n)
		if time.Since(start)+d > s.retry.MaxElapsed {
			return fmt.Errorf("transaction failed %d times in %s: %w", n, time.Since(start).Round(time.Millisecond), err)
		}
		s.log.Debug("transaction retry", "attempt", n, "delay", d, "err", err)
		if !sleepCtx(ctx, d) {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}

func (s *Store) txOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if s.commitErr != nil {
		// Tests: a commit that went through but reported an error, as
		// one cut off by a leader change can.
		if err := s.commitErr(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}
