//go:build cgo && libsqlite3

package service

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"hardbake.dev/hardbake/store"
)

// DQLite is the Store on package store's embedded dqlite node. It only
// translates types and errors: every query and transaction (and its
// retries) lives in package store.
type DQLite struct {
	S *store.Store
}

// storedRequest is what the service keeps in store.Order.Request: the
// canonical request the client sent, and what rendering it decided, so an
// order read back needs no re-render to be shown.
type storedRequest struct {
	Request json.RawMessage `json:"request"`
	Derived derived         `json:"derived"`
}

type derived struct {
	Hostname    string `json:"hostname"`
	InstanceID  string `json:"instance_id"`
	AgentKind   string `json:"agent_kind"`
	AgentArch   string `json:"agent_arch"`
	AgentSHA256 string `json:"agent_sha256"`
	PlanDigest  string `json:"plan_digest"`
	SSHPort     int    `json:"ssh_port"`
}

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ from, to error }{
		{store.ErrNotFound, ErrNotFound},
		{store.ErrConflict, ErrConflict},
		{store.ErrReplay, ErrReplay},
		{store.ErrInvalidTransition, ErrTransition},
		{store.ErrRevoked, ErrRevoked},
		{store.ErrInvalid, ErrInvalid},
		{store.ErrStale, ErrStale},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w (%w)", m.to, err)
		}
	}
	return err
}

func contentType(doc []byte) string {
	if t := strings.TrimSpace(string(doc)); strings.HasPrefix(t, "{") {
		return "application/json"
	}
	return "application/yaml"
}

func fromProfile(p store.Profile) ProfileRevision {
	return ProfileRevision{Name: p.Name, Revision: int(p.Revision), Doc: p.Document, SHA256: hex.EncodeToString(p.SHA256[:]), CreatedAt: p.CreatedAt}
}

// PutProfile implements Store.
func (d DQLite) PutProfile(ctx context.Context, name string, doc []byte) (ProfileRevision, bool, error) {
	p, created, err := d.S.PutProfile(ctx, name, contentType(doc), doc)
	return fromProfile(p), created, mapErr(err)
}

// Profile implements Store.
func (d DQLite) Profile(ctx context.Context, name string, rev int) (ProfileRevision, error) {
	p, err := d.S.GetProfile(ctx, name, int64(rev))
	return fromProfile(p), mapErr(err)
}

// LatestRevision implements Store.
func (d DQLite) LatestRevision(ctx context.Context, name string) (int, string, error) {
	rev, sum, err := d.S.LatestProfileRevision(ctx, name)
	return int(rev), hex.EncodeToString(sum[:]), mapErr(err)
}

// Profiles implements Store.
func (d DQLite) Profiles(ctx context.Context) ([]ProfileRevision, error) {
	ps, err := d.S.ListProfiles(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]ProfileRevision, len(ps))
	for i, p := range ps {
		out[i] = ProfileRevision{Name: p.Name, Revision: int(p.LatestRevision), SHA256: hex.EncodeToString(p.SHA256[:]), CreatedAt: p.CreatedAt}
	}
	return out, nil
}

// CreateOrder implements Store.
func (d DQLite) CreateOrder(ctx context.Context, o NewOrder) (Order, bool, error) {
	req, err := json.Marshal(storedRequest{Request: o.Request, Derived: derived{
		Hostname: o.Hostname, InstanceID: o.InstanceID, AgentKind: o.AgentKind, AgentArch: o.AgentArch,
		AgentSHA256: o.AgentSHA256, PlanDigest: o.PlanDigest, SSHPort: o.SSHPort,
	}})
	if err != nil {
		return Order{}, false, fmt.Errorf("encode order request: %w", err)
	}
	n := store.NewOrder{
		ID: o.ID, ClientOrderID: o.ClientOrderID, Request: req,
		ProfileName: o.Profile, ProfileRevision: int64(o.ProfileRevision), IfLatest: o.IfLatest,
		UserData: o.Files["user-data"], MetaData: o.Files["meta-data"], NetworkConfig: o.Files["network-config"],
		ReportKey: o.ReportKey, EdgeTarget: o.EdgeTarget,
	}
	sum, err := hex.DecodeString(o.RequestHash)
	if err != nil || len(sum) != 32 || len(o.TokenHash) != 32 {
		return Order{}, false, errors.New("order request hash and token hash must be sha256")
	}
	copy(n.RequestSHA256[:], sum)
	if o.IfLatest {
		psum, err := hex.DecodeString(o.ProfileSHA256)
		if err != nil || len(psum) != 32 {
			return Order{}, false, errors.New("profile sha256 must be 64 hex digits")
		}
		copy(n.ProfileSHA256[:], psum)
	}
	copy(n.TokenHash[:], o.TokenHash)
	res, err := d.S.CreateOrder(ctx, n)
	if err != nil {
		return Order{}, false, mapErr(err)
	}
	return fromOrder(res.Order, true), !res.Existed, nil
}

// fromOrder converts o; withFiles says whether o was read with its files.
func fromOrder(o store.Order, withFiles bool) Order {
	out := Order{
		NewOrder: NewOrder{
			ID: o.ID, ClientOrderID: o.ClientOrderID, RequestHash: hex.EncodeToString(o.RequestSHA256[:]),
			Profile: o.ProfileName, ProfileRevision: int(o.ProfileRevision),
			TokenHash: o.TokenHash[:], ReportKey: o.ReportKey, CreatedAt: o.CreatedAt,
		},
		Status: string(o.Status), FetchedAt: o.FetchedAt, ReportedAt: o.ReportedAt,
		UpdatedAt: latest(o.CreatedAt, o.FetchedAt, o.ReportedAt, o.FinishedAt, o.RevokedAt),
		Report:    o.Report, Revoked: !o.RevokedAt.IsZero(), EdgeOutcome: o.EdgeOutcome,
	}
	out.EdgeTarget = o.EdgeTarget
	if withFiles {
		out.Files = map[string][]byte{"user-data": o.UserData, "meta-data": o.MetaData}
		if o.NetworkConfig != nil {
			out.Files["network-config"] = o.NetworkConfig
		}
	}
	var sr storedRequest
	if json.Unmarshal(o.Request, &sr) == nil {
		out.Request = sr.Request
		dv := sr.Derived
		out.Hostname, out.InstanceID, out.AgentKind, out.AgentArch = dv.Hostname, dv.InstanceID, dv.AgentKind, dv.AgentArch
		out.AgentSHA256, out.PlanDigest, out.SSHPort = dv.AgentSHA256, dv.PlanDigest, dv.SSHPort
	}
	return out
}

func fromSummary(o store.OrderSummary) Order {
	return Order{
		NewOrder: NewOrder{ID: o.ID, ClientOrderID: o.ClientOrderID, Profile: o.ProfileName, ProfileRevision: int(o.ProfileRevision), CreatedAt: o.CreatedAt},
		Status:   string(o.Status), FetchedAt: o.FetchedAt, ReportedAt: o.ReportedAt,
		UpdatedAt: latest(o.CreatedAt, o.FetchedAt, o.ReportedAt, o.FinishedAt, o.RevokedAt),
		Revoked:   !o.RevokedAt.IsZero(),
	}
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// Order implements Store.
func (d DQLite) Order(ctx context.Context, id string) (Order, error) {
	o, err := d.S.GetOrder(ctx, id)
	return fromOrder(o, true), mapErr(err)
}

// OrderByClientOrderID implements Store.
func (d DQLite) OrderByClientOrderID(ctx context.Context, clientOrderID string) (Order, error) {
	o, err := d.S.OrderByClientOrderID(ctx, clientOrderID)
	return fromOrder(o, true), mapErr(err)
}

// OrderMeta implements Store.
func (d DQLite) OrderMeta(ctx context.Context, id string) (Order, error) {
	o, err := d.S.GetOrderMeta(ctx, id)
	return fromOrder(o, false), mapErr(err)
}

// OrderByTokenHash implements Store.
func (d DQLite) OrderByTokenHash(ctx context.Context, hash []byte) (Order, error) {
	var h [32]byte
	if len(hash) != len(h) {
		return Order{}, ErrNotFound
	}
	copy(h[:], hash)
	o, err := d.S.OrderByToken(ctx, h)
	return fromOrder(o, true), mapErr(err)
}

// Orders implements Store.
func (d DQLite) Orders(ctx context.Context, status, cursor string, limit int) (Page, error) {
	os, next, err := d.S.ListOrders(ctx, store.ListOptions{Status: store.Status(status), Cursor: cursor, Limit: limit})
	if err != nil {
		return Page{}, mapErr(err)
	}
	p := Page{Orders: make([]Order, len(os)), Next: next}
	for i, o := range os {
		p.Orders[i] = fromSummary(o)
	}
	return p, nil
}

// Cancel implements Store.
func (d DQLite) Cancel(ctx context.Context, id string) (Order, error) {
	o, err := d.S.CancelOrder(ctx, id)
	return fromOrder(o, true), mapErr(err)
}

// MarkFetched implements Store.
func (d DQLite) MarkFetched(ctx context.Context, id string) error {
	_, err := d.S.MarkFetched(ctx, id)
	return mapErr(err)
}

// AddReport implements Store.
func (d DQLite) AddReport(ctx context.Context, r ReportRecord) (Order, error) {
	rec := store.Report{OrderID: r.OrderID, Status: store.Status(r.Status), Nonce: r.Nonce, Timestamp: r.Timestamp, Signature: r.Signature, Body: r.Body}
	for _, k := range r.HostKeys {
		rec.HostKeys = append(rec.HostKeys, store.HostKey{Type: k.Type, Fingerprint: k.Fingerprint})
	}
	o, err := d.S.RecordReport(ctx, rec)
	return fromOrder(o, true), mapErr(err)
}

// TimeOut implements Store.
func (d DQLite) TimeOut(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := d.S.TimeOutOrders(ctx, cutoff)
	return int(n), mapErr(err)
}

// CountByStatus implements Store.
func (d DQLite) CountByStatus(ctx context.Context) (map[string]int, error) {
	c, err := d.S.CountByStatus(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(map[string]int, len(c))
	for k, v := range c {
		out[string(k)] = int(v)
	}
	return out, nil
}

// SetEdgeTarget implements Store.
func (d DQLite) SetEdgeTarget(ctx context.Context, id string, target []byte) (Order, error) {
	o, err := d.S.SetEdgeTarget(ctx, id, target)
	return fromOrder(o, true), mapErr(err)
}

// SetEdgeOutcome implements Store.
func (d DQLite) SetEdgeOutcome(ctx context.Context, id string, outcome []byte) error {
	return mapErr(d.S.SetEdgeOutcome(ctx, id, outcome))
}

// EdgeOrders implements Store.
func (d DQLite) EdgeOrders(ctx context.Context, cursor string, limit int) (Page, error) {
	os, next, err := d.S.EdgeOrders(ctx, cursor, limit)
	if err != nil {
		return Page{}, mapErr(err)
	}
	p := Page{Orders: make([]Order, len(os)), Next: next}
	for i, o := range os {
		p.Orders[i] = Order{NewOrder: NewOrder{ID: o.ID, Profile: o.ProfileName, ProfileRevision: int(o.ProfileRevision), EdgeTarget: o.EdgeTarget},
			Status: string(o.Status), EdgeOutcome: o.EdgeOutcome}
	}
	return p, nil
}

// Role implements Store.
func (d DQLite) Role(ctx context.Context) (string, error) {
	r, err := d.S.Role(ctx)
	if err != nil {
		return "", mapErr(err)
	}
	if r.Leader {
		return "leader", nil
	}
	return r.Role, nil
}
