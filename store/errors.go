package store

import "errors"

// Sentinel errors. Every error a Store method returns for a reason the
// caller can act on wraps exactly one of these, so the HTTP layer maps them
// to status codes with errors.Is and never has to parse a message.
var (
	// ErrNotFound: no profile, revision or order with that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the client_order_id is already taken by an order whose
	// request body differs (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrRevoked: the order was cancelled, so its NoCloud token and its
	// report key no longer open anything.
	ErrRevoked = errors.New("revoked")
	// ErrReplay: this report (same order, same nonce) was seen before.
	ErrReplay = errors.New("replayed report")
	// ErrInvalidTransition: the order's status does not allow the change
	// (for example a report for an order that is already hardened).
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrStale: a create made for the profile's latest revision
	// (NewOrder.IfLatest) found a newer revision, or another document
	// under that number; nothing was written.
	ErrStale = errors.New("profile revision is not the latest")
	// ErrInvalid: an argument is malformed (empty name, unknown status,
	// bad cursor ...). The wrapping message names the argument.
	ErrInvalid = errors.New("invalid argument")
	// ErrSchemaTooNew: the database was migrated by a newer hardbaked than
	// this one; running on it could corrupt it, so Open refuses.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrDataDir: the data directory cannot be used (not a directory, not
	// writable, ...). Checked before dqlite touches it, because libdqlite
	// aborts the process on an unwritable directory.
	ErrDataDir = errors.New("unusable data directory")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store closed")
)
