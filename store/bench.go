//go:build cgo && libsqlite3

package store

import (
	"context"
	"fmt"
)

// RawInsert is the baseline the order benchmarks compare against: one
// single-row INSERT of payload, as its own transaction, straight on the
// database of this node, with none of the store's work (no retry, no
// write slot, no idempotency read, no validation). It writes to a scratch
// table, bench_raw, that it creates on first use and that nothing else
// reads; it is not part of the schema. Call it from one goroutine, as the
// write path would be: concurrent raw writers get "database is locked".
func (s *Store) RawInsert(ctx context.Context, payload []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.rawReady.Load() {
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)`); err != nil {
			return fmt.Errorf("create bench_raw: %w", err)
		}
		s.rawReady.Store(true)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO bench_raw (payload) VALUES (?)`, nonNil(payload)); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	return nil
}
