package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"time"
)

// Status is the life-cycle state of an order.
//
//	created ──> fetched ──> hardened | partial | failed   (RecordReport)
//	   │           │
//	   │           ├──────> timed-out                      (TimeOutOrders)
//	   └───────────┴──────> cancelled                      (CancelOrder)
//
// hardened, partial, failed, timed-out and cancelled are final: nothing moves
// an order out of them.
type Status string

// The order statuses.
const (
	StatusCreated   Status = "created"
	StatusFetched   Status = "fetched"
	StatusHardened  Status = "hardened"
	StatusPartial   Status = "partial"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed-out"
	StatusCancelled Status = "cancelled"
)

// Statuses lists every status in life-cycle order (metrics iterate it so a
// status with no orders still shows as 0).
func Statuses() []Status {
	return []Status{
		StatusCreated, StatusFetched, StatusHardened, StatusPartial,
		StatusFailed, StatusTimedOut, StatusCancelled,
	}
}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, k := range Statuses() {
		if s == k {
			return true
		}
	}
	return false
}

// Open reports whether the order still waits for its machine: only open
// orders can be fetched-marked, reported, timed out or cancelled.
func (s Status) Open() bool { return s == StatusCreated || s == StatusFetched }

// ReportStatus reports whether s is a status a first-boot report may set.
func (s Status) ReportStatus() bool {
	return s == StatusHardened || s == StatusPartial || s == StatusFailed
}

// Profile is one immutable revision of a stored profile document.
type Profile struct {
	Name        string
	Revision    int64 // 1, 2, ... per name
	ContentType string
	Document    []byte
	SHA256      [32]byte // of Document
	CreatedAt   time.Time
}

// ProfileSummary describes a profile by its latest revision, without the
// document bytes.
type ProfileSummary struct {
	Name           string
	LatestRevision int64
	ContentType    string
	SHA256         [32]byte
	CreatedAt      time.Time // of the latest revision
}

// HostKey is one SSH host key fingerprint a machine reported.
type HostKey struct {
	Type        string `json:"type"`        // e.g. "ssh-ed25519"
	Fingerprint string `json:"fingerprint"` // e.g. "SHA256:..."
}

// NewOrder is what CreateOrder stores. The caller renders the order before
// calling (the bytes served are fixed at creation), so it chooses the ID and
// the secrets first; see NewOrderID, NewSecret and HashToken.
type NewOrder struct {
	// ID is the order's public identifier; empty means the store picks one
	// with NewOrderID. It is usually chosen by the caller, because the
	// rendered user-data names it (report URL).
	ID string
	// ClientOrderID is the client's idempotency key (unique).
	ClientOrderID string
	// RequestSHA256 is a hash of the canonical request; the same
	// ClientOrderID with another hash is ErrConflict.
	RequestSHA256 [32]byte
	// Request is the order as the client sent it (JSON), returned by
	// GetOrder so the API can show what was asked for.
	Request []byte

	ProfileName     string
	ProfileRevision int64 // must exist
	// IfLatest makes the create conditional: the caller rendered the order
	// for what it took to be the profile's latest revision without reading
	// it first, so the order is stored only if ProfileRevision is the
	// latest revision and its document hashes to ProfileSHA256; otherwise
	// (a missing revision too) nothing is written and the error is
	// ErrStale, never ErrNotFound. The check is part of
	// the INSERT, so no write can come between it and the order.
	IfLatest      bool
	ProfileSHA256 [32]byte

	// The bytes served for this order.
	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte // may be nil
	SeedISO       []byte // may be nil: then it is built on demand

	// TokenHash is HashToken(token) of the NoCloud-Net path secret. The
	// token itself is never stored.
	TokenHash [32]byte
	// ReportKey is the per-order secret the machine signs its report with
	// (HMAC-SHA256). It is stored as given, since verifying needs it.
	ReportKey []byte
	// EdgeTarget is where the machine is at its provider (JSON the
	// service defines), when the order names it at creation; may be nil.
	EdgeTarget []byte
}

// Order is a stored order.
type Order struct {
	ID              string
	ClientOrderID   string
	RequestSHA256   [32]byte
	Request         []byte
	Status          Status
	ProfileName     string
	ProfileRevision int64

	UserData      []byte
	MetaData      []byte
	NetworkConfig []byte
	SeedISO       []byte

	TokenHash [32]byte
	ReportKey []byte

	CreatedAt  time.Time
	FetchedAt  time.Time // zero until the first NoCloud fetch
	ReportedAt time.Time // zero until a report was accepted
	FinishedAt time.Time // when the status became final; zero while open
	RevokedAt  time.Time // zero unless cancelled

	Report   []byte    // the accepted report JSON, nil before
	HostKeys []HostKey // from the accepted report

	EdgeTarget  []byte // SetEdgeTarget's JSON, nil until given
	EdgeOutcome []byte // SetEdgeOutcome's JSON, nil until an apply ended
}

// OrderSummary is an order without its large byte fields, as ListOrders
// returns it.
type OrderSummary struct {
	ID              string
	ClientOrderID   string
	Status          Status
	ProfileName     string
	ProfileRevision int64
	CreatedAt       time.Time
	FetchedAt       time.Time
	ReportedAt      time.Time
	FinishedAt      time.Time
	RevokedAt       time.Time
}

// ListOptions selects a page of orders. Orders are listed newest first.
type ListOptions struct {
	// Status filters by status; empty means all.
	Status Status
	// Cursor is the NextCursor of the previous page; empty starts at the
	// newest order.
	Cursor string
	// Limit is the page size; 0 means DefaultListLimit, and it is capped
	// at MaxListLimit.
	Limit int
}

// Page sizes for ListOrders.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Report is a first-boot report the API has already authenticated (its
// HMAC checked with the order's ReportKey and its timestamp found fresh).
// The store records it and enforces what the signature cannot: that the
// order may still take a report and that this report was not seen before.
type Report struct {
	OrderID string
	Status  Status // hardened, partial or failed
	// Nonce identifies this report for replay protection; it must be
	// covered by the signature (the signature itself, hex, is a good nonce).
	Nonce     string
	Timestamp time.Time // the signed timestamp
	Signature []byte
	Body      []byte // the report JSON, stored as received
	HostKeys  []HostKey
}

// CreateResult is what CreateOrder returns.
type CreateResult struct {
	Order Order
	// Existed is true when the ClientOrderID was already stored with the
	// same RequestSHA256: Order is that earlier order, nothing was written.
	Existed bool
}

// Role describes this node in the dqlite cluster, for metrics and status.
type Role struct {
	ID            uint64
	Address       string
	Role          string // "voter", "stand-by" or "spare"
	Leader        bool
	LeaderAddress string // empty if no leader is known
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewOrderID returns a random order ID: 26 characters of lower-case
// base32 (128 random bits), safe in URLs and file names.
func NewOrderID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return idEncoding.EncodeToString(b[:])
}

// NewSecret returns a random secret of 256 bits as 52 characters of
// lower-case base32: suitable for the NoCloud-Net token (it must live in
// the URL path, since cloud-init cannot send a header) and for a report
// key.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// HashToken is how a NoCloud token is stored and looked up.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func validOrderID(id string) error {
	if len(id) < 16 || len(id) > 64 {
		return fmt.Errorf("%w: order id %q: want 16 to 64 characters", ErrInvalid, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: order id %q: only a-z, 0-9, '-' and '_' are allowed", ErrInvalid, id)
		}
	}
	return nil
}
