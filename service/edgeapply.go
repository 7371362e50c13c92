package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/apply"
	"hardbake.dev/hardbake/edge/fromconfig"
)

// EdgeTarget is where an order's machine is at its provider: what hardbaked
// needs to apply the order's edge firewall and backup policy there. It is
// given in POST /v1/orders (edge_target) or set later with
// PUT /v1/orders/{id}/edge/target.
type EdgeTarget struct {
	// IP is the machine's public IPv4 address: the OVHcloud Network
	// Firewall lives on it.
	IP string `json:"ip,omitempty"`
	// HetznerServerID is the Hetzner Cloud server the firewall is applied to.
	HetznerServerID int64 `json:"hetzner_server_id,omitempty"`
	// OVHVPS is the OVHcloud VPS service name (vps-….vps.ovh.net), for the
	// backup policy.
	OVHVPS string `json:"ovh_vps,omitempty"`
}

var vpsNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// check validates t, reporting each problem at path.field, and puts the IP
// in its canonical form (so the same address is the same target).
func (t *EdgeTarget) check(path string, bad func(path, code, format string, args ...any)) {
	at := func(field string) string {
		if path == "" {
			return field
		}
		return path + "." + field
	}
	if t.IP == "" && t.HetznerServerID == 0 && t.OVHVPS == "" {
		bad(path, string(config.CodeRequired), "names nothing: give ip, hetzner_server_id or ovh_vps")
	}
	if t.IP != "" {
		ip, err := netip.ParseAddr(t.IP)
		if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			bad(at("ip"), string(config.CodeInvalidAddress), "%q is not the machine's IPv4 address", t.IP)
		} else {
			t.IP = ip.String()
		}
	}
	if t.HetznerServerID < 0 {
		bad(at("hetzner_server_id"), CodeInvalidServerID, "must be a positive server id")
	}
	if t.OVHVPS != "" && !vpsNameRE.MatchString(t.OVHVPS) {
		bad(at("ovh_vps"), CodeInvalidVPSName, "%q is not an OVHcloud VPS service name (such as vps-0a1b2c3d.vps.ovh.net)", t.OVHVPS)
	}
}

func (t EdgeTarget) applyTarget() apply.Target {
	ip, _ := netip.ParseAddr(t.IP) // checked when stored; invalid stays the zero Addr
	return apply.Target{IP: ip, ServerID: t.HetznerServerID, VPSServiceName: t.OVHVPS}
}

// EdgeConfig is what hardbaked needs to apply edge firewalls and backup
// policies itself. Without it (Config.Edge nil) it only renders them.
type EdgeConfig struct {
	Credentials apply.Credentials
	Options     apply.Options
	// Workers apply in parallel (default 2); one order is never applied
	// by two at once.
	Workers int
	// Queue bounds the orders waiting for a worker (default 256); a full
	// queue refuses with 503 instead of growing.
	Queue int
	// ApplyTimeout bounds one order's apply, every provider included
	// (default 15 min).
	ApplyTimeout time.Duration
}

// Edge states shown in an order's edge.state.
const (
	EdgeNone     = "none"               // nothing to apply: no credentials for what the profile names
	EdgeNoTarget = "waiting-for-target" // PUT …/edge/target to start
	EdgePending  = "pending"            // queued, or the last apply was for another target
	EdgeRunning  = "running"
	EdgeApplied  = "applied" // every provider and backup step complete
	// EdgeInterrupted: an apply cut short by a shutdown, or one that never
	// recorded its end within its timeout; the next start resumes it.
	EdgeInterrupted = "interrupted"
	EdgeFailed      = "failed" // see last.providers[].error; retry with POST …/edge/apply
	maxTargetBody   = 4 << 10
)

// EdgeRecord is what one apply did, stored on the order (edge_outcome)
// and shown as edge.last. It never holds a credential: every error passes
// the clients' redactors and the service's own.
type EdgeRecord struct {
	State      string         `json:"state"`
	Target     EdgeTarget     `json:"target"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	Providers  []edge.Outcome `json:"providers,omitempty"`
	Backup     *edge.Outcome  `json:"backup,omitempty"`
	Snapshot   *edge.Outcome  `json:"snapshot,omitempty"`
	// Error is a problem before any provider was called.
	Error string `json:"error,omitempty"`
}

// EdgeInfo is an order's edge as GET /v1/orders/{id} shows it.
type EdgeInfo struct {
	State string `json:"state"`
	// Applies lists what hardbaked applies for this order: the providers
	// the profile's edge.providers names that it has credentials for, and
	// ovh-vps-backup and ovh-vps-snapshot from its backup: section.
	Applies []string    `json:"applies"`
	Target  *EdgeTarget `json:"target,omitempty"`
	Last    *EdgeRecord `json:"last,omitempty"`
}

// applyPlan is what hardbaked applies for orders of one profile.
type applyPlan struct {
	providers        []string
	backup, snapshot bool
}

func (p applyPlan) empty() bool { return len(p.providers) == 0 && !p.backup && !p.snapshot }

func (p applyPlan) names() []string {
	out := slices.Clone(p.providers)
	if p.backup {
		out = append(out, "ovh-vps-backup")
	}
	if p.snapshot {
		out = append(out, "ovh-vps-snapshot")
	}
	return out
}

// plan: only providers the profile names explicitly are applied; an
// empty edge.providers renders for any provider but applies for none.
func (s *Server) plan(prof *config.Profile) applyPlan {
	var p applyPlan
	if s.edge == nil || prof == nil {
		return p
	}
	creds := s.edge.cfg.Credentials
	if prof.Edge != nil {
		for _, name := range prof.Edge.Providers {
			if (name == edge.ProviderOVH || name == edge.ProviderHetzner) && creds.Has(name) {
				p.providers = append(p.providers, name)
			}
		}
	}
	if b := prof.Backup; b != nil && b.Provider == edge.BackupOVHVPS && creds.OVH != nil {
		p.backup, p.snapshot = b.AutomatedOn(), b.SnapshotOn()
	}
	return p
}

// edgeView is the order's edge for single-order answers (listings carry
// none). nil when the order has no target, no outcome and nothing to apply.
func (s *Server) edgeView(ctx context.Context, o Order) *EdgeInfo {
	var target *EdgeTarget
	if len(o.EdgeTarget) > 0 {
		target = &EdgeTarget{}
		if json.Unmarshal(o.EdgeTarget, target) != nil {
			target = nil
		}
	}
	var last *EdgeRecord
	if len(o.EdgeOutcome) > 0 {
		last = &EdgeRecord{}
		if json.Unmarshal(o.EdgeOutcome, last) != nil {
			last = nil
		}
	}
	var p applyPlan
	if s.edge != nil {
		if _, prof, err := s.profile(ctx, o.Profile, o.ProfileRevision); err == nil {
			p = s.plan(prof)
		}
	}
	info := &EdgeInfo{Applies: p.names(), Target: target, Last: last}
	if info.Applies == nil {
		info.Applies = []string{}
	}
	switch {
	case p.empty() && target == nil && last == nil:
		return nil
	case p.empty(), o.Revoked && last == nil:
		info.State = EdgeNone // a cancelled order is never applied again
	case o.Revoked:
		info.State = last.State
	case target == nil:
		info.State = EdgeNoTarget
	case last != nil && last.State == EdgeRunning && last.Target == *target && s.edge.isRunning(o.ID):
		info.State = EdgeRunning
	case s.edge.busy(o.ID), last == nil, last.Target != *target:
		info.State = EdgePending
	case last.State == EdgeRunning && s.now().Sub(last.StartedAt) > s.edge.cfg.ApplyTimeout+time.Minute:
		info.State = EdgeInterrupted
	case o.Status == StatusHardened && p.snapshot && (last.Snapshot == nil || !last.Snapshot.Complete) && last.State == EdgeApplied:
		info.State = EdgePending // the snapshot after the report is still to come
	default:
		info.State = last.State
	}
	return info
}

// edgeRunner is the bounded background apply: a fixed number of workers
// read order ids from a bounded queue. An order already queued is not
// queued twice; one being applied is applied again once it finishes (its
// target may have changed meanwhile), never by two workers at once.
type edgeRunner struct {
	cfg   EdgeConfig
	queue chan string
	red   *edge.Redactor

	mu      sync.Mutex
	queued  map[string]bool
	running map[string]bool
	again   map[string]bool
	counts  map[[2]string]uint64 // applies by provider and result, for /metrics
}

func newEdgeRunner(cfg EdgeConfig) *edgeRunner {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 15 * time.Minute
	}
	return &edgeRunner{cfg: cfg, queue: make(chan string, cfg.Queue), red: edge.NewRedactor(cfg.Credentials.Secrets()...),
		queued: map[string]bool{}, running: map[string]bool{}, again: map[string]bool{}, counts: map[[2]string]uint64{}}
}

// enqueue asks for the order to be applied; false when the queue is full.
func (r *edgeRunner) enqueue(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.queued[id]:
		return true
	case r.running[id]:
		r.again[id] = true
		return true
	}
	select {
	case r.queue <- id:
		r.queued[id] = true
		return true
	default:
		return false
	}
}

func (r *edgeRunner) busy(id string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queued[id] || r.running[id] || r.again[id]
}

func (r *edgeRunner) isRunning(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[id]
}

func (r *edgeRunner) count(provider, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[[2]string{provider, result}]++
}

func (r *edgeRunner) snapshotMetrics() (queued int, counts map[[2]string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue), maps.Clone(r.counts)
}

// RunEdgeWorkers applies queued orders until ctx ends, then waits for the
// applies in flight (their provider calls are cancelled; each still
// records its outcome). Without Config.Edge it returns at once.
func (s *Server) RunEdgeWorkers(ctx context.Context) {
	if s.edge == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.resumeEdge(ctx) })
	for range s.edge.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-s.edge.queue:
					s.runOne(ctx, id)
				}
			}
		})
	}
	wg.Wait()
}

// resumeEdge queues again, at start, the orders whose apply an earlier
// process left unfinished (queued, running, or the snapshot still to
// come): the queue lived in its memory. It waits for room when the queue
// is full, and stops with ctx.
func (s *Server) resumeEdge(ctx context.Context) {
	cursor, resumed := "", 0
	for {
		page, err := s.cfg.Store.EdgeOrders(ctx, cursor, 100)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("edge resume: list orders", "err", err)
			}
			return
		}
		for _, o := range page.Orders {
			switch v := s.edgeView(ctx, o); {
			case v == nil, v.State != EdgePending && v.State != EdgeRunning && v.State != EdgeInterrupted:
				continue
			}
			for !s.edge.enqueue(o.ID) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
			resumed++
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if resumed > 0 {
		s.log.Info("edge applies resumed", "orders", resumed)
	}
}

func (s *Server) runOne(ctx context.Context, id string) {
	r := s.edge
	r.mu.Lock()
	delete(r.queued, id)
	r.running[id] = true
	r.mu.Unlock()
	s.applyOrder(ctx, id)
	r.mu.Lock()
	delete(r.running, id)
	again := r.again[id]
	delete(r.again, id)
	r.mu.Unlock()
	if again && ctx.Err() == nil && !r.enqueue(id) {
		s.log.Warn("edge apply queue full: order left pending", "order", id)
	}
}

// applyOrder applies one order's edge firewall and backup policy at every
// provider hardbaked has credentials for, and records the outcome. Each
// provider reconciles from its own state, so running this again after a
// failure completes the work without duplicates.
func (s *Server) applyOrder(base context.Context, id string) {
	ctx, cancel := context.WithTimeout(base, s.edge.cfg.ApplyTimeout)
	defer cancel()
	// The record is written even when the apply was cut short.
	write := func(rec *EdgeRecord) {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(base), 30*time.Second)
		defer wcancel()
		data, err := json.Marshal(rec)
		if err == nil {
			err = s.cfg.Store.SetEdgeOutcome(wctx, id, data)
		}
		if err != nil {
			s.log.Error("edge outcome not stored", "order", id, "err", s.edge.red.String(err.Error()))
		}
	}
	o, err := s.cfg.Store.Order(ctx, id)
	if err != nil {
		s.log.Error("edge apply: read order", "order", id, "err", err)
		return
	}
	var target EdgeTarget
	if o.Revoked || len(o.EdgeTarget) == 0 || json.Unmarshal(o.EdgeTarget, &target) != nil {
		return // cancelled meanwhile, or nothing to apply to
	}
	rec := &EdgeRecord{State: EdgeRunning, Target: target, StartedAt: s.now().UTC()}
	write(rec)
	finish := func() {
		now := s.now().UTC()
		rec.FinishedAt = &now
		rec.State = EdgeApplied
		if rec.Error != "" {
			rec.State = EdgeFailed
		}
		for _, out := range s.outcomes(rec) {
			if !out.Complete {
				rec.State = EdgeFailed
			}
		}
		if rec.State == EdgeFailed && base.Err() != nil {
			rec.State = EdgeInterrupted // by a shutdown: the next start resumes it
		}
		write(rec)
		s.log.Info("edge applied", "order", id, "state", rec.State, "providers", len(rec.Providers))
	}
	res, aerr := s.rebake(ctx, o)
	if aerr != nil {
		rec.Error = "the order could not be rendered again: " + aerr.msg
		if aerr.err != nil {
			rec.Error = s.edge.red.String("the order could not be rendered again: " + aerr.err.Error())
		}
		finish()
		return
	}
	in, err := fromconfig.Input(res.Profile, res.Machine, res.Plan)
	if err != nil {
		rec.Error = s.edge.red.String(err.Error())
		finish()
		return
	}
	p := s.plan(res.Profile)
	creds, opts := s.edge.cfg.Credentials, s.edge.cfg.Options
	if opts.OVH.Logger == nil {
		opts.OVH.Logger = s.log.With("component", "edge")
	}
	if opts.Hetzner.Logger == nil {
		opts.Hetzner.Logger = s.log.With("component", "edge")
	}
	t := target.applyTarget()
	for _, name := range p.providers {
		var out *edge.Outcome
		var err error
		switch {
		case name == edge.ProviderOVH && !t.IP.IsValid():
			err = errors.New("the order's edge target has no ip: the OVHcloud Network Firewall lives on the machine's IPv4 address")
		case name == edge.ProviderHetzner && t.ServerID == 0:
			err = errors.New("the order's edge target has no hetzner_server_id: the firewall is applied to a server")
		default:
			out, err = apply.Edge(ctx, creds, opts, name, in, res.Profile.Edge, t)
		}
		rec.Providers = append(rec.Providers, *s.settle(name, out, err))
	}
	needVPS := errors.New("the order's edge target has no ovh_vps: the backup policy is carried out on an OVHcloud VPS service")
	if p.backup {
		var out *edge.Outcome
		err := needVPS
		if t.VPSServiceName != "" {
			out, err = apply.Backup(ctx, creds, opts, res.Profile.Backup, t)
		}
		rec.Backup = s.settle("ovh-vps-backup", out, err)
	}
	if p.snapshot && o.Status == StatusHardened {
		var out *edge.Outcome
		err := needVPS
		if t.VPSServiceName != "" {
			out, err = apply.AfterHardened(ctx, creds, opts, res.Profile.Backup, in, t)
		}
		rec.Snapshot = s.settle("ovh-vps-snapshot", out, err)
	}
	finish()
}

// settle makes the outcome of one provider call, never nil, with its
// error redacted, and counts it.
func (s *Server) settle(name string, out *edge.Outcome, err error) *edge.Outcome {
	if out == nil {
		out = &edge.Outcome{Provider: name, Steps: []edge.Step{}}
	}
	if err != nil {
		out.Complete = false
		out.Error = err.Error()
	}
	red := s.edge.red
	out.Error = red.String(out.Error)
	out.Target = red.String(out.Target)
	for i := range out.Steps {
		out.Steps[i].Object = red.String(out.Steps[i].Object)
	}
	result := EdgeApplied
	if !out.Complete {
		result = EdgeFailed
		s.log.Warn("edge apply failed", "provider", name, "err", out.Error)
	}
	s.edge.count(name, result)
	return out
}

func (s *Server) outcomes(rec *EdgeRecord) []*edge.Outcome {
	out := make([]*edge.Outcome, 0, len(rec.Providers)+2)
	for i := range rec.Providers {
		out = append(out, &rec.Providers[i])
	}
	for _, o := range []*edge.Outcome{rec.Backup, rec.Snapshot} {
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

// queueEdge queues the order's apply when there is something to apply;
// queued reports whether it was, full whether the queue refused it.
func (s *Server) queueEdge(ctx context.Context, o Order) (queued, full bool) {
	return s.queueEdgeFor(ctx, o, func(p applyPlan) bool { return !p.empty() })
}

// queueSnapshot queues the apply of an order that just became hardened,
// when its profile asks for the snapshot.
func (s *Server) queueSnapshot(ctx context.Context, o Order) (queued, full bool) {
	return s.queueEdgeFor(ctx, o, func(p applyPlan) bool { return p.snapshot })
}

func (s *Server) queueEdgeFor(ctx context.Context, o Order, wanted func(applyPlan) bool) (queued, full bool) {
	if s.edge == nil || len(o.EdgeTarget) == 0 || o.Revoked {
		return false, false
	}
	_, prof, err := s.profile(ctx, o.Profile, o.ProfileRevision)
	if err != nil || !wanted(s.plan(prof)) {
		return false, false
	}
	if !s.edge.enqueue(o.ID) {
		return false, true
	}
	return true, false
}

// putEdgeTarget serves PUT /v1/orders/{id}/edge/target: the machine's
// place at its provider. Setting it (again, even unchanged) queues the
// apply: 202 when queued, 200 when hardbaked has nothing to apply for this
// order, 503 when the queue is full (the target is stored; PUT again or
// POST …/edge/apply later).
func (s *Server) putEdgeTarget(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	body, aerr := readBody(w, r, maxTargetBody)
	if aerr != nil {
		return aerr
	}
	var t EdgeTarget
	if d := decodeStrictJSON(body, &t); d != nil {
		return &apiError{status: http.StatusBadRequest, msg: "malformed edge target", diags: d}
	}
	positions := bodyPositions(body)
	var diags []Diagnostic
	t.check("", func(path, code, format string, args ...any) {
		p := lookupPos(positions, path)
		diags = append(diags, Diagnostic{Code: code, Severity: "error", File: "request", Path: path, Line: p.Line, Column: p.Col, Message: fmt.Sprintf(format, args...)})
	})
	if len(diags) > 0 {
		return &apiError{status: http.StatusUnprocessableEntity, msg: "invalid edge target", diags: diags}
	}
	data, _ := json.Marshal(t)
	o, err := s.cfg.Store.SetEdgeTarget(r.Context(), id, data)
	if err != nil {
		return storeError(err, "order")
	}
	return s.answerQueued(w, r, o)
}

// applyEdgeNow serves POST /v1/orders/{id}/edge/apply: apply again, for a
// failed apply or drift at the provider.
func (s *Server) applyEdgeNow(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	if o.Revoked {
		return errorf(http.StatusGone, "order %s is cancelled", id)
	}
	if len(o.EdgeTarget) == 0 {
		return errorf(http.StatusConflict, "order %s has no edge target: PUT /v1/orders/%s/edge/target first", id, id)
	}
	if s.edge == nil {
		return errorf(http.StatusConflict, "nothing to apply: hardbaked runs without --edge-credentials")
	}
	_, prof, err := s.profile(r.Context(), o.Profile, o.ProfileRevision)
	if err != nil {
		return storeError(err, "profile")
	}
	if s.plan(prof).empty() {
		return errorf(http.StatusConflict, "nothing to apply: profile %s@%d names no provider hardbaked has credentials for (edge.providers, backup.provider)", o.Profile, o.ProfileRevision)
	}
	return s.answerQueued(w, r, o)
}

func (s *Server) answerQueued(w http.ResponseWriter, r *http.Request, o Order) *apiError {
	queued, full := s.queueEdge(r.Context(), o)
	if full {
		w.Header().Set("Retry-After", "30")
		return errorf(http.StatusServiceUnavailable, "the edge apply queue is full; the target is stored: POST /v1/orders/%s/edge/apply later", o.ID)
	}
	resp := s.orderResponse(o)
	resp.Edge = s.edgeView(r.Context(), o)
	status := http.StatusOK
	if queued {
		status = http.StatusAccepted
	}
	writeJSON(w, status, resp)
	return nil
}
