package service

import (
	"context"
	"errors"
	"time"
)

// Order statuses. An order starts created; the first NoCloud-Net fetch
// makes it fetched; the machine's signed report makes it hardened, partial
// or failed; the deadline sweeper makes a silent one timed-out; DELETE makes
// it cancelled, which revokes its URLs.
const (
	StatusCreated   = "created"
	StatusFetched   = "fetched"
	StatusHardened  = "hardened"
	StatusPartial   = "partial"
	StatusFailed    = "failed"
	StatusTimedOut  = "timed-out"
	StatusCancelled = "cancelled"
)

// Statuses lists every status, in lifecycle order (metrics and the status
// filter use it).
func Statuses() []string {
	return []string{StatusCreated, StatusFetched, StatusHardened, StatusPartial, StatusFailed, StatusTimedOut, StatusCancelled}
}

// Errors the Store returns; the handlers map them to status codes.
var (
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("conflict")   // same client_order_id, different request
	ErrReplay     = errors.New("replay")     // report nonce seen before
	ErrTransition = errors.New("transition") // status change not allowed from the current status
	ErrRevoked    = errors.New("revoked")    // the order was cancelled: its URLs and report key open nothing
	ErrInvalid    = errors.New("invalid")    // a malformed argument, e.g. a cursor this service never gave out
	ErrStale      = errors.New("stale")      // NewOrder.IfLatest: its profile revision is no longer the latest
)

// ProfileRevision is one immutable revision of a named profile.
type ProfileRevision struct {
	Name      string
	Revision  int
	Doc       []byte // the document exactly as PUT (YAML or JSON); empty in lists
	SHA256    string // of Doc
	CreatedAt time.Time
}

// NewOrder is everything the service stores when it creates an order: the
// rendered bytes it will serve, and what they came from.
type NewOrder struct {
	ID              string
	ClientOrderID   string
	RequestHash     string // sha256 of the canonical request: same hash = same order
	Request         []byte // the canonical request (JSON)
	Profile         string
	ProfileRevision int
	// IfLatest: the order was rendered for what the service took to be
	// the profile's latest revision, without reading it; CreateOrder
	// stores it only if ProfileRevision is still the latest and hashes to
	// ProfileSHA256, else ErrStale and nothing is stored.
	IfLatest      bool
	ProfileSHA256 string
	Hostname      string
	InstanceID    string
	AgentKind     string
	AgentArch     string
	AgentSHA256   string
	PlanDigest    string
	SSHPort       int
	TokenHash     []byte // sha256 of the NoCloud-Net token; the token itself is never stored
	ReportKey     []byte // the key the machine signs its report with
	Files         map[string][]byte
	CreatedAt     time.Time
	// EdgeTarget is the request's edge_target (JSON), nil when none.
	EdgeTarget []byte
}

// Order is a stored order; Files is nil in listings.
type Order struct {
	NewOrder
	Status     string
	FetchedAt  time.Time // zero until the first NoCloud-Net fetch
	ReportedAt time.Time // zero until a report arrived
	UpdatedAt  time.Time
	Report     []byte // the accepted report (JSON), nil before
	// Revoked is set by a cancel. An order cancelled while open is
	// cancelled; one already final keeps its status, revoked all the same.
	Revoked bool
	// EdgeOutcome is the last edge apply's record (JSON), nil before one.
	EdgeOutcome []byte
}

// ReportRecord is a report whose signature the service checked.
type ReportRecord struct {
	OrderID   string
	Status    string // hardened, partial or failed
	Nonce     string
	Timestamp time.Time // the signed one
	Signature []byte
	Body      []byte
	HostKeys  []HostKey
}

// HostKey is one SSH host key fingerprint from a report.
type HostKey struct {
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
}

// Page is one page of an order listing.
type Page struct {
	Orders []Order
	Next   string // opaque cursor for the next page; empty on the last
}

// Store is what the service needs from the database. Package store
// implements it on an embedded dqlite node; every method is one retried
// transaction there, so nothing above this interface sees busy/locked or
// leader-change errors, and a cluster changes nothing here.
type Store interface {
	// PutProfile stores doc as a new revision, unless it equals the latest
	// one: then that revision comes back with created=false.
	PutProfile(ctx context.Context, name string, doc []byte) (rev ProfileRevision, created bool, err error)
	// Profile returns revision rev of name, or the latest when rev is 0.
	Profile(ctx context.Context, name string, rev int) (ProfileRevision, error)
	// LatestRevision returns the number and SHA256 of name's latest
	// revision, without reading its document.
	LatestRevision(ctx context.Context, name string) (rev int, sha256 string, err error)
	// Profiles returns the latest revision of every profile, without Doc.
	Profiles(ctx context.Context) ([]ProfileRevision, error)

	// CreateOrder stores o, or returns the order already stored under
	// o.ClientOrderID with created=false when its RequestHash is the same;
	// ErrConflict when it differs.
	CreateOrder(ctx context.Context, o NewOrder) (ord Order, created bool, err error)
	// Order and OrderByTokenHash return the order with its Files.
	Order(ctx context.Context, id string) (Order, error)
	// OrderMeta is Order without the Files (nil): for status checks and
	// answers that do not carry the files.
	OrderMeta(ctx context.Context, id string) (Order, error)
	// OrderByClientOrderID returns the order created under this
	// client_order_id, with its Files.
	OrderByClientOrderID(ctx context.Context, clientOrderID string) (Order, error)
	OrderByTokenHash(ctx context.Context, hash []byte) (Order, error)
	// Orders lists orders newest first, optionally of one status; cursor
	// is a Page.Next (ErrInvalid when it is not one).
	Orders(ctx context.Context, status, cursor string, limit int) (Page, error)
	// Cancel revokes the order's URLs and report key and moves an open
	// order to cancelled; cancelling twice changes nothing.
	Cancel(ctx context.Context, id string) (Order, error)
	// MarkFetched records the first fetch: created -> fetched.
	// ErrRevoked for a cancelled order.
	MarkFetched(ctx context.Context, id string) error
	// AddReport stores a verified report and moves the open order to its
	// status; ErrReplay when the nonce was used for this order before,
	// ErrTransition when the order is final, ErrRevoked when cancelled.
	AddReport(ctx context.Context, r ReportRecord) (Order, error)
	// TimeOut moves open orders whose machine had until cutoff to report
	// (counted from the first fetch, or from creation) to timed-out.
	TimeOut(ctx context.Context, cutoff time.Time) (int, error)
	CountByStatus(ctx context.Context) (map[string]int, error)
	// SetEdgeTarget replaces the order's edge target (JSON); ErrRevoked
	// for a cancelled order.
	SetEdgeTarget(ctx context.Context, id string, target []byte) (Order, error)
	// SetEdgeOutcome replaces the order's edge outcome (JSON).
	SetEdgeOutcome(ctx context.Context, id string, outcome []byte) error
	// EdgeOrders pages through the orders with an edge target that are not
	// cancelled, oldest first (ID, Status, Profile, ProfileRevision,
	// EdgeTarget and EdgeOutcome set).
	EdgeOrders(ctx context.Context, cursor string, limit int) (Page, error)
	// Role is this node's dqlite role: leader, voter, stand-by or spare.
	Role(ctx context.Context) (string, error)
}
