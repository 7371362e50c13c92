//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"fmt"
)

// A migration moves the schema from version-1 to version. Migrations are
// append-only: once released, a migration's body never changes (a database
// already at that version would never see the change); a fix is a new
// migration at the end. TestSchemaGolden guards this: editing an old
// migration changes that version's golden schema.
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, tx *sql.Tx) error
}

// schema returns the ordered list of migrations; the last version is the
// schema this binary runs on.
func schema() []migration {
	return []migration{
		{1, "profiles, orders, meta", migrateCore},
		{2, "report replay log, order indexes", migrateReports},
		{3, "order edge target and outcome", migrateEdge},
	}
}

// LatestSchemaVersion is the schema version this binary brings a database
// to.
func LatestSchemaVersion() int { return len(schema()) }

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

func migrateCore(ctx context.Context, tx *sql.Tx) error {
	err := execAll(ctx, tx,
		`CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)`,
		`CREATE TABLE profiles (
    name         TEXT    NOT NULL,
    revision     INTEGER NOT NULL CHECK (revision >= 1),
    content_type TEXT    NOT NULL,
    document     BLOB    NOT NULL,
    sha256       BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (name, revision)
)`,
		// seq orders the list (newest first) and backs the cursor; id is
		// the public, random identifier.
		`CREATE TABLE orders (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    client_order_id  TEXT    NOT NULL UNIQUE,
    request_sha256   BLOB    NOT NULL,
    request          BLOB    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
        ('created', 'fetched', 'hardened', 'partial', 'failed', 'timed-out', 'cancelled')),
    profile_name     TEXT    NOT NULL,
    profile_revision INTEGER NOT NULL,
    user_data        BLOB    NOT NULL,
    meta_data        BLOB    NOT NULL,
    network_config   BLOB,
    seed_iso         BLOB,
    token_sha256     BLOB    NOT NULL UNIQUE,
    report_key       BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    fetched_at       INTEGER,
    reported_at      INTEGER,
    finished_at      INTEGER,
    revoked_at       INTEGER,
    report           BLOB,
    host_keys        TEXT
)`,
	)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('cluster_id', ?)`, NewOrderID())
	return err
}

func migrateReports(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		// One row per accepted report: a second report with the same
		// nonce for the same order is a replay.
		`CREATE TABLE report_nonces (
    order_id    TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    signature   BLOB    NOT NULL,
    signed_at   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (order_id, nonce)
)`,
		`CREATE INDEX orders_status_seq ON orders (status, seq)`,
	)
}

// migrateEdge adds what the provider edge needs on an order: where the
// machine is at its provider (edge_target) and what applying its edge
// firewall and backup policy did there (edge_outcome). Both are JSON the
// service defines; the store keeps them as given.
func migrateEdge(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		`ALTER TABLE orders ADD COLUMN edge_target TEXT`,
		`ALTER TABLE orders ADD COLUMN edge_outcome TEXT`,
		// EdgeOrders walks the orders a restarted service may have to
		// apply again: only those with a target that are not revoked.
		`CREATE INDEX orders_edge_seq ON orders (seq) WHERE edge_target IS NOT NULL AND revoked_at IS NULL`,
	)
}

// migrate brings the database to the last version of ms, one migration per
// transaction, so a crash leaves it at a consistent version. Several nodes
// starting at once are safe: each transaction re-reads the version first.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("schema: migration %d (%q) has version %d: versions must be 1, 2, ... in order", i+1, m.name, m.version)
		}
	}
	err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		return execAll(ctx, tx, `CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`)
	})
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	for {
		done := false
		err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
			cur, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur > len(ms) {
				return fmt.Errorf("%w: database at version %d, this binary knows %d", ErrSchemaTooNew, cur, len(ms))
			}
			if cur == len(ms) {
				done = true
				return nil
			}
			m := ms[cur]
			if err := m.up(ctx, tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, s.now().UnixNano())
			if err == nil {
				s.log.Info("schema migrated", "version", m.version, "name", m.name)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		if done {
			return nil
		}
	}
}

func schemaVersion(ctx context.Context, tx *sql.Tx) (int, error) {
	var v int
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, err
}

// SchemaVersion is the database's current schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.tx(ctx, readTx, func(tx *sql.Tx) error {
		var err error
		v, err = schemaVersion(ctx, tx)
		return err
	})
	return v, err
}
