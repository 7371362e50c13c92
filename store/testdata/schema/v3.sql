-- table meta
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- table orders
CREATE TABLE orders (
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
, edge_target TEXT, edge_outcome TEXT);

-- index orders_edge_seq
CREATE INDEX orders_edge_seq ON orders (seq) WHERE edge_target IS NOT NULL AND revoked_at IS NULL;

-- index orders_status_seq
CREATE INDEX orders_status_seq ON orders (status, seq);

-- table profiles
CREATE TABLE profiles (
    name         TEXT    NOT NULL,
    revision     INTEGER NOT NULL CHECK (revision >= 1),
    content_type TEXT    NOT NULL,
    document     BLOB    NOT NULL,
    sha256       BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (name, revision)
);

-- table report_nonces
CREATE TABLE report_nonces (
    order_id    TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,
    signature   BLOB    NOT NULL,
    signed_at   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (order_id, nonce)
);

-- table schema_version
CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
);

