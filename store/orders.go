//go:build cgo && libsqlite3

package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

const orderColumns = `id, client_order_id, request_sha256, request, status, profile_name, profile_revision,
user_data, meta_data, network_config, seed_iso, token_sha256, report_key,
created_at, fetched_at, reported_at, finished_at, revoked_at, report, host_keys, edge_target, edge_outcome`

// orderMetaColumns are orderColumns with NULL for the four file columns,
// so scanOrder reads both; a status check need not move an order's files.
const orderMetaColumns = `id, client_order_id, request_sha256, request, status, profile_name, profile_revision,
NULL, NULL, NULL, NULL, token_sha256, report_key,
created_at, fetched_at, reported_at, finished_at, revoked_at, report, host_keys, edge_target, edge_outcome`

type rowScanner interface{ Scan(...any) error }

func scanOrder(r rowScanner) (Order, error) {
	var o Order
	var reqSum, tokSum []byte
	var status string
	var created int64
	var fetched, reported, finished, revoked sql.NullInt64
	var hostKeys, edgeTarget, edgeOutcome sql.NullString
	err := r.Scan(&o.ID, &o.ClientOrderID, &reqSum, &o.Request, &status, &o.ProfileName, &o.ProfileRevision,
		&o.UserData, &o.MetaData, &o.NetworkConfig, &o.SeedISO, &tokSum, &o.ReportKey,
		&created, &fetched, &reported, &finished, &revoked, &o.Report, &hostKeys, &edgeTarget, &edgeOutcome)
	if err != nil {
		return Order{}, err
	}
	copy(o.RequestSHA256[:], reqSum)
	copy(o.TokenHash[:], tokSum)
	o.Status = Status(status)
	o.CreatedAt = fromNanos(created)
	o.FetchedAt = nullNanos(fetched)
	o.ReportedAt = nullNanos(reported)
	o.FinishedAt = nullNanos(finished)
	o.RevokedAt = nullNanos(revoked)
	if edgeTarget.Valid {
		o.EdgeTarget = []byte(edgeTarget.String)
	}
	if edgeOutcome.Valid {
		o.EdgeOutcome = []byte(edgeOutcome.String)
	}
	if hostKeys.Valid && hostKeys.String != "" {
		if err := json.Unmarshal([]byte(hostKeys.String), &o.HostKeys); err != nil {
			return Order{}, fmt.Errorf("order %s: stored host keys: %w", o.ID, err)
		}
	}
	return o, nil
}

// getOrderBy reads one order by a unique column (id, client_order_id or
// token_sha256).
func getOrderBy(ctx context.Context, q querier, column string, key any) (Order, error) {
	return getOrderCols(ctx, q, orderColumns, column, key)
}

func getOrderCols(ctx context.Context, q querier, columns, column string, key any) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+columns+` FROM orders WHERE `+column+` = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("read order: %w", err)
	}
	return o, nil
}

// CreateOrder stores a new order with status created, idempotently by
// ClientOrderID:
//   - the ClientOrderID is new: the order is stored (Existed false);
//   - it exists with the same RequestSHA256: the stored order is returned
//     with Existed true and nothing is written, so a client whose request
//     timed out can retry without creating a second machine;
//   - it exists with another RequestSHA256: ErrConflict.
//
// The profile revision must exist (ErrNotFound otherwise). A retry inside
// the store after a commit whose outcome was lost recognises its own order
// by ID and still reports Existed false.
func (s *Store) CreateOrder(ctx context.Context, n NewOrder) (CreateResult, error) {
	if n.ID == "" {
		n.ID = NewOrderID()
	}
	if err := validOrderID(n.ID); err != nil {
		return CreateResult{}, err
	}
	if err := validName("client_order_id", n.ClientOrderID); err != nil {
		return CreateResult{}, err
	}
	if err := validName("profile name", n.ProfileName); err != nil {
		return CreateResult{}, err
	}
	if n.ProfileRevision < 1 {
		return CreateResult{}, fmt.Errorf("%w: profile revision %d (want ≥ 1)", ErrInvalid, n.ProfileRevision)
	}
	if len(n.ReportKey) < 16 {
		return CreateResult{}, fmt.Errorf("%w: report key shorter than 16 bytes", ErrInvalid)
	}
	if n.TokenHash == ([32]byte{}) {
		return CreateResult{}, fmt.Errorf("%w: empty token hash", ErrInvalid)
	}
	if n.EdgeTarget != nil && (len(n.EdgeTarget) > maxEdgeJSON || !json.Valid(n.EdgeTarget)) {
		return CreateResult{}, fmt.Errorf("%w: edge target must be at most %d KiB of JSON", ErrInvalid, maxEdgeJSON>>10)
	}
	return s.enqueueCreate(ctx, n)
}

// createInTx writes one order inside a (possibly shared) write
// transaction, or, for a create alone without an edge target, as a
// statement of its own (tx is then the database: see one). The common case is one statement: the
// INSERT itself checks that the profile revision exists and, by the UNIQUE
// client_order_id, that the order is new. Only when it inserts nothing do
// reads find out why; outside a transaction that is still sound, since an
// order never changes its client_order_id and profile revisions are never
// deleted. The error is an itemError when it concerns this order alone
// (conflict, missing profile): a transaction stays good for the others.
// Any other error is the statement's or the connection's and ends the
// transaction.
func (s *Store) createInTx(ctx context.Context, tx querier, n NewOrder) (CreateResult, error) {
	o := Order{
		ID: n.ID, ClientOrderID: n.ClientOrderID, RequestSHA256: n.RequestSHA256, Request: nonNil(n.Request),
		Status: StatusCreated, ProfileName: n.ProfileName, ProfileRevision: n.ProfileRevision,
		UserData: nonNil(n.UserData), MetaData: nonNil(n.MetaData), NetworkConfig: n.NetworkConfig, SeedISO: n.SeedISO,
		TokenHash: n.TokenHash, ReportKey: n.ReportKey, CreatedAt: s.now().UTC(), EdgeTarget: n.EdgeTarget,
	}
	// ON CONFLICT names client_order_id only: a clash on id or
	// token_sha256 (random values) stays a constraint error.
	args := []any{o.ID, o.ClientOrderID, o.RequestSHA256[:], o.Request, string(o.Status),
		o.ProfileName, o.ProfileRevision, o.UserData, o.MetaData, nullBytes(o.NetworkConfig), nullBytes(o.SeedISO),
		o.TokenHash[:], o.ReportKey, o.CreatedAt.UnixNano(), o.ProfileName, o.ProfileRevision}
	q := insertOrder
	if n.IfLatest {
		q = insertOrderIfLatest
		args = append(args, n.ProfileSHA256[:], o.ProfileName)
	}
	r, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return CreateResult{}, fmt.Errorf("insert order %s: %w", o.ID, err)
	}
	rows, err := r.RowsAffected()
	if err != nil {
		return CreateResult{}, fmt.Errorf("insert order %s: %w", o.ID, err)
	}
	if rows == 1 {
		// The edge target is a second statement, and only when given, so
		// the common insert stays the one above (createAlone runs an
		// order with one in a transaction).
		if o.EdgeTarget != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET edge_target = ? WHERE id = ?`, string(o.EdgeTarget), o.ID); err != nil {
				return CreateResult{}, fmt.Errorf("insert order %s: edge target: %w", o.ID, err)
			}
		}
		return CreateResult{Order: o}, nil
	}
	existing, err := getOrderBy(ctx, tx, "client_order_id", n.ClientOrderID)
	switch {
	case err == nil:
		if existing.RequestSHA256 != n.RequestSHA256 {
			return CreateResult{}, itemError{fmt.Errorf("client_order_id %q is order %s, created from a different request: %w",
				n.ClientOrderID, existing.ID, ErrConflict)}
		}
		// Existed is false when the order is our own: a rerun after a
		// commit whose acknowledgement was lost.
		return CreateResult{Order: existing, Existed: existing.ID != n.ID}, nil
	case !errors.Is(err, ErrNotFound):
		return CreateResult{}, err
	}
	p, err := getProfile(ctx, tx, n.ProfileName, n.ProfileRevision)
	switch {
	case errors.Is(err, ErrNotFound) && n.IfLatest:
		// A revision that does not exist is not the latest either.
		return CreateResult{}, itemError{fmt.Errorf("profile %q has no revision %d: %w", n.ProfileName, n.ProfileRevision, ErrStale)}
	case errors.Is(err, ErrNotFound):
		return CreateResult{}, itemError{err}
	case err != nil:
		return CreateResult{}, err
	}
	if n.IfLatest {
		latest, _, err := latestRevision(ctx, tx, n.ProfileName)
		if err != nil {
			return CreateResult{}, err
		}
		if latest != n.ProfileRevision || p.SHA256 != n.ProfileSHA256 {
			return CreateResult{}, itemError{fmt.Errorf("profile %q revision %d (latest %d): %w", n.ProfileName, n.ProfileRevision, latest, ErrStale)}
		}
	}
	return CreateResult{}, fmt.Errorf("insert order %s: no row inserted, none under client_order_id %q", o.ID, n.ClientOrderID)
}

// insertOrder inserts an order if its profile revision exists and its
// client_order_id is new (createInTx); insertOrderIfLatest also requires
// the revision to be the profile's latest, with the given SHA-256
// (NewOrder.IfLatest): two more arguments, the SHA-256 and the profile name.
const (
	insertOrderRow = `INSERT INTO orders (id, client_order_id, request_sha256, request, status,
profile_name, profile_revision, user_data, meta_data, network_config, seed_iso, token_sha256, report_key, created_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
`
	insertOrderOnce     = "\nON CONFLICT (client_order_id) DO NOTHING"
	insertOrder         = insertOrderRow + `WHERE EXISTS (SELECT 1 FROM profiles WHERE name = ? AND revision = ?)` + insertOrderOnce
	insertOrderIfLatest = insertOrderRow + `WHERE EXISTS (SELECT 1 FROM profiles p WHERE p.name = ? AND p.revision = ? AND p.sha256 = ?
  AND p.revision = (SELECT MAX(revision) FROM profiles WHERE name = ?))` + insertOrderOnce
)

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// GetOrder returns the order with this ID, with all its bytes.
func (s *Store) GetOrder(ctx context.Context, id string) (Order, error) {
	return s.readOrder(ctx, "id", id, "order "+strconv.Quote(id))
}

// OrderByClientOrderID returns the order created with this client_order_id.
func (s *Store) OrderByClientOrderID(ctx context.Context, clientOrderID string) (Order, error) {
	return s.readOrder(ctx, "client_order_id", clientOrderID, "client_order_id "+strconv.Quote(clientOrderID))
}

// OrderByToken returns the order whose NoCloud token hashes to tokenHash
// (see HashToken). ErrNotFound if none; ErrRevoked if it was cancelled.
func (s *Store) OrderByToken(ctx context.Context, tokenHash [32]byte) (Order, error) {
	// The error never names the hash: it is as good as the token for
	// finding the order in a log.
	o, err := s.readOrder(ctx, "token_sha256", tokenHash[:], "token")
	if err != nil {
		return Order{}, err
	}
	if !o.RevokedAt.IsZero() {
		return Order{}, fmt.Errorf("token of order %s: %w", o.ID, ErrRevoked)
	}
	return o, nil
}

// GetOrderMeta returns the order with this ID without its files
// (UserData, MetaData, NetworkConfig and SeedISO are nil): what a status
// check needs, without moving the ~14 KB of an order's user-data.
func (s *Store) GetOrderMeta(ctx context.Context, id string) (Order, error) {
	var o Order
	err := s.one(ctx, readTx, func(q querier) error {
		var err error
		o, err = getOrderCols(ctx, q, orderMetaColumns, "id", id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Order{}, fmt.Errorf("order %q: %w", id, ErrNotFound)
	}
	return o, err
}

func (s *Store) readOrder(ctx context.Context, column string, key any, what string) (Order, error) {
	var o Order
	// One SELECT: no transaction around it (see one).
	err := s.one(ctx, readTx, func(q querier) error {
		var err error
		o, err = getOrderBy(ctx, q, column, key)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Order{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return o, err
}

// ListOrders returns a page of orders, newest first, and the cursor of the
// next page ("" when this was the last). Keyset pagination: orders created
// while paging never shift a page or appear twice.
func (s *Store) ListOrders(ctx context.Context, opt ListOptions) (orders []OrderSummary, next string, err error) {
	if opt.Status != "" && !opt.Status.Valid() {
		return nil, "", fmt.Errorf("%w: status %q", ErrInvalid, opt.Status)
	}
	limit := opt.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	before := int64(math.MaxInt64)
	if opt.Cursor != "" {
		before, err = strconv.ParseInt(opt.Cursor, 10, 64)
		if err != nil || before < 1 {
			return nil, "", fmt.Errorf("%w: cursor %q", ErrInvalid, opt.Cursor)
		}
	}
	err = s.tx(ctx, readTx, func(tx *sql.Tx) error {
		orders, next = orders[:0], ""
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, client_order_id, status, profile_name, profile_revision,
created_at, fetched_at, reported_at, finished_at, revoked_at
FROM orders WHERE seq < ? AND (? = '' OR status = ?) ORDER BY seq DESC LIMIT ?`,
			before, string(opt.Status), string(opt.Status), limit+1)
		if err != nil {
			return fmt.Errorf("list orders: %w", err)
		}
		defer rows.Close()
		var lastSeq int64
		for rows.Next() {
			if len(orders) == limit {
				next = strconv.FormatInt(lastSeq, 10)
				break
			}
			var o OrderSummary
			var status string
			var created int64
			var fetched, reported, finished, revoked sql.NullInt64
			if err := rows.Scan(&lastSeq, &o.ID, &o.ClientOrderID, &status, &o.ProfileName, &o.ProfileRevision,
				&created, &fetched, &reported, &finished, &revoked); err != nil {
				return fmt.Errorf("list orders: %w", err)
			}
			o.Status = Status(status)
			o.CreatedAt = fromNanos(created)
			o.FetchedAt = nullNanos(fetched)
			o.ReportedAt = nullNanos(reported)
			o.FinishedAt = nullNanos(finished)
			o.RevokedAt = nullNanos(revoked)
			orders = append(orders, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	return orders, next, nil
}

// CancelOrder revokes the order's NoCloud token and report key, and moves
// an open order (created, fetched) to cancelled. An order whose status is
// already final keeps it (a hardened machine stays hardened in the record)
// but is revoked all the same, so its seed can no longer be fetched.
// Cancelling again changes nothing. It returns the order as stored after.
func (s *Store) CancelOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		var err error
		o, err = getOrderBy(ctx, tx, "id", id)
		if err != nil {
			return fmt.Errorf("order %q: %w", id, err)
		}
		if !o.RevokedAt.IsZero() {
			return nil
		}
		now := s.now().UTC()
		o.RevokedAt = now
		if o.Status.Open() {
			o.Status = StatusCancelled
			o.FinishedAt = now
		}
		_, err = tx.ExecContext(ctx, `UPDATE orders SET revoked_at = ?, status = ?, finished_at = ? WHERE id = ?`,
			now.UnixNano(), string(o.Status), nanosOrNull(o.FinishedAt), id)
		if err != nil {
			return fmt.Errorf("cancel order %s: %w", id, err)
		}
		return nil
	})
	return o, err
}

func nanosOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// MarkFetched records the first NoCloud fetch of the order: fetched_at is
// set once and never moves, and a created order becomes fetched. It reports
// whether this call was the first. A revoked order is ErrRevoked. Callers
// can skip the call (and its write) when Order.FetchedAt is already set.
func (s *Store) MarkFetched(ctx context.Context, id string) (first bool, err error) {
	now := s.now().UTC()
	committing := false // an earlier attempt reached its commit
	err = s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		first = false
		o, err := getOrderBy(ctx, tx, "id", id)
		if err != nil {
			return fmt.Errorf("order %q: %w", id, err)
		}
		if !o.RevokedAt.IsZero() {
			return fmt.Errorf("order %s: %w", id, ErrRevoked)
		}
		if !o.FetchedAt.IsZero() {
			// Our own earlier commit, if it went through unreported.
			first = committing && o.FetchedAt.Equal(now)
			return nil
		}
		status := o.Status
		if status == StatusCreated {
			status = StatusFetched
		}
		_, err = tx.ExecContext(ctx, `UPDATE orders SET fetched_at = ?, status = ? WHERE id = ? AND fetched_at IS NULL`,
			now.UnixNano(), string(status), id)
		if err != nil {
			return fmt.Errorf("mark order %s fetched: %w", id, err)
		}
		first, committing = true, true
		return nil
	})
	return first, err
}

// RecordReport stores an authenticated first-boot report and moves the
// order to the report's status. Checked in this order, each refusal
// changing nothing:
//   - the order exists (ErrNotFound) and is not revoked (ErrRevoked);
//   - the nonce was not accepted for this order before (ErrReplay);
//   - the order is open: created or fetched (ErrInvalidTransition);
//   - the status is hardened, partial or failed (ErrInvalid).
//
// It returns the order as stored after.
func (s *Store) RecordReport(ctx context.Context, r Report) (Order, error) {
	if !r.Status.ReportStatus() {
		return Order{}, fmt.Errorf("%w: report status %q (want hardened, partial or failed)", ErrInvalid, r.Status)
	}
	if r.Nonce == "" || len(r.Nonce) > 256 {
		return Order{}, fmt.Errorf("%w: report nonce must be 1 to 256 bytes", ErrInvalid)
	}
	if len(r.Signature) == 0 {
		return Order{}, fmt.Errorf("%w: report without signature", ErrInvalid)
	}
	var hostKeys []byte
	if len(r.HostKeys) > 0 {
		var err error
		if hostKeys, err = json.Marshal(r.HostKeys); err != nil {
			return Order{}, fmt.Errorf("%w: host keys: %w", ErrInvalid, err)
		}
	}
	var o Order
	committing := false // an earlier attempt reached its commit
	err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		var err error
		o, err = getOrderBy(ctx, tx, "id", r.OrderID)
		if err != nil {
			return fmt.Errorf("order %q: %w", r.OrderID, err)
		}
		if !o.RevokedAt.IsZero() {
			return fmt.Errorf("report for order %s: %w", o.ID, ErrRevoked)
		}
		var sig []byte
		err = tx.QueryRowContext(ctx, `SELECT signature FROM report_nonces WHERE order_id = ? AND nonce = ?`,
			o.ID, r.Nonce).Scan(&sig)
		switch {
		case err == nil:
			if committing && bytes.Equal(sig, r.Signature) {
				// Our own commit went through although it reported
				// an error: the report is recorded.
				return nil
			}
			return fmt.Errorf("report for order %s: %w", o.ID, ErrReplay)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("report for order %s: read nonces: %w", o.ID, err)
		}
		if !o.Status.Open() {
			return fmt.Errorf("report for order %s in status %s: %w", o.ID, o.Status, ErrInvalidTransition)
		}
		now := s.now().UTC()
		_, err = tx.ExecContext(ctx, `INSERT INTO report_nonces (order_id, nonce, signature, signed_at, received_at)
VALUES (?, ?, ?, ?, ?)`, o.ID, r.Nonce, r.Signature, r.Timestamp.UnixNano(), now.UnixNano())
		if err != nil {
			return fmt.Errorf("report for order %s: store nonce: %w", o.ID, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE orders SET status = ?, reported_at = ?, finished_at = ?, report = ?, host_keys = ?
WHERE id = ?`, string(r.Status), now.UnixNano(), now.UnixNano(), nonNil(r.Body), nullString(hostKeys), o.ID)
		if err != nil {
			return fmt.Errorf("report for order %s: %w", o.ID, err)
		}
		o.Status, o.ReportedAt, o.FinishedAt, o.Report, o.HostKeys = r.Status, now, now, nonNil(r.Body), r.HostKeys
		committing = true
		return nil
	})
	if err != nil {
		return Order{}, err
	}
	return o, nil
}

func nullString(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// TimeOutOrders moves every open order whose machine had until deadline to
// report, and did not, to timed-out: an order never fetched counts from
// its creation, a fetched one from its first fetch (a machine booted days
// after its order was created gets the full window). It returns how many
// orders it moved.
func (s *Store) TimeOutOrders(ctx context.Context, deadline time.Time) (int64, error) {
	var n int64
	now := s.now().UnixNano()
	committing := false // an earlier attempt reached its commit
	err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		var earlier int64
		if committing {
			// An earlier attempt's commit may have gone through
			// unreported: its orders carry this call's finish time.
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders WHERE status = 'timed-out' AND finished_at = ?`,
				now).Scan(&earlier)
			if err != nil {
				return fmt.Errorf("time out orders: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE orders SET status = 'timed-out', finished_at = ?
WHERE status IN ('created', 'fetched') AND COALESCE(fetched_at, created_at) < ?`,
			now, deadline.UnixNano())
		if err != nil {
			return fmt.Errorf("time out orders: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		n += earlier
		committing = true
		return nil
	})
	return n, err
}

// CountByStatus returns the number of orders in each status; every status
// is present, 0 included.
func (s *Store) CountByStatus(ctx context.Context) (map[Status]int64, error) {
	counts := make(map[Status]int64, len(Statuses()))
	err := s.tx(ctx, readTx, func(tx *sql.Tx) error {
		for _, st := range Statuses() {
			counts[st] = 0
		}
		rows, err := tx.QueryContext(ctx, `SELECT status, COUNT(*) FROM orders GROUP BY status`)
		if err != nil {
			return fmt.Errorf("count orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var st string
			var c int64
			if err := rows.Scan(&st, &c); err != nil {
				return fmt.Errorf("count orders: %w", err)
			}
			counts[Status(st)] = c
		}
		return rows.Err()
	})
	return counts, err
}

// maxEdgeJSON bounds what the service may store as an order's edge target
// or outcome (a handful of providers, a few dozen steps each).
const maxEdgeJSON = 256 << 10

// SetEdgeTarget records where the order's machine is at its provider
// (JSON the service defines: its IP, server id …), replacing what was
// there. A revoked order is ErrRevoked. It returns the order as stored
// after. Setting the same target again writes the same value: the service
// uses it to ask for the edge to be applied again.
func (s *Store) SetEdgeTarget(ctx context.Context, id string, target []byte) (Order, error) {
	if len(target) == 0 || len(target) > maxEdgeJSON || !json.Valid(target) {
		return Order{}, fmt.Errorf("%w: edge target must be 1 byte to %d KiB of JSON", ErrInvalid, maxEdgeJSON>>10)
	}
	var o Order
	err := s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		var err error
		o, err = getOrderBy(ctx, tx, "id", id)
		if err != nil {
			return fmt.Errorf("order %q: %w", id, err)
		}
		if !o.RevokedAt.IsZero() {
			return fmt.Errorf("edge target of order %s: %w", id, ErrRevoked)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET edge_target = ? WHERE id = ?`, string(target), id); err != nil {
			return fmt.Errorf("edge target of order %s: %w", id, err)
		}
		o.EdgeTarget = append([]byte(nil), target...)
		return nil
	})
	return o, err
}

// SetEdgeOutcome records what applying the order's edge did (JSON the
// service defines), replacing the previous outcome. It is written for
// cancelled orders too: an apply that was running when the order was
// cancelled still changed things at the provider, and the record says so.
func (s *Store) SetEdgeOutcome(ctx context.Context, id string, outcome []byte) error {
	if len(outcome) == 0 || len(outcome) > maxEdgeJSON || !json.Valid(outcome) {
		return fmt.Errorf("%w: edge outcome must be 1 byte to %d KiB of JSON", ErrInvalid, maxEdgeJSON>>10)
	}
	return s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE orders SET edge_outcome = ? WHERE id = ?`, string(outcome), id)
		if err != nil {
			return fmt.Errorf("edge outcome of order %s: %w", id, err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return fmt.Errorf("edge outcome of order %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("order %q: %w", id, ErrNotFound)
		}
		return nil
	})
}

// EdgeOrder is an order as EdgeOrders lists it: what the service needs to
// decide whether its edge must be applied again.
type EdgeOrder struct {
	ID              string
	Status          Status
	ProfileName     string
	ProfileRevision int64
	EdgeTarget      []byte
	EdgeOutcome     []byte // nil before the first apply ended
}

// EdgeOrders lists the orders that have an edge target and are not
// revoked, oldest first, limit at a time (1 to MaxListLimit); cursor is the
// next value of the previous page ("" to start, "" back on the last).
func (s *Store) EdgeOrders(ctx context.Context, cursor string, limit int) (orders []EdgeOrder, next string, err error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, "", fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	}
	var after int64
	if cursor != "" {
		if after, err = strconv.ParseInt(cursor, 10, 64); err != nil || after < 1 {
			return nil, "", fmt.Errorf("%w: cursor %q", ErrInvalid, cursor)
		}
	}
	err = s.tx(ctx, readTx, func(tx *sql.Tx) error {
		orders, next = orders[:0], ""
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, status, profile_name, profile_revision, edge_target, edge_outcome
FROM orders WHERE edge_target IS NOT NULL AND revoked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?`, after, limit+1)
		if err != nil {
			return fmt.Errorf("list edge orders: %w", err)
		}
		defer rows.Close()
		var lastSeq int64
		for rows.Next() {
			if len(orders) == limit {
				next = strconv.FormatInt(lastSeq, 10)
				break
			}
			var o EdgeOrder
			var status, target string
			var outcome sql.NullString
			if err := rows.Scan(&lastSeq, &o.ID, &status, &o.ProfileName, &o.ProfileRevision, &target, &outcome); err != nil {
				return fmt.Errorf("list edge orders: %w", err)
			}
			o.Status, o.EdgeTarget = Status(status), []byte(target)
			if outcome.Valid {
				o.EdgeOutcome = []byte(outcome.String)
			}
			orders = append(orders, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	return orders, next, nil
}
