package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// OrderRequest is the body of POST /v1/orders: the order file's fields
// (validated by package config exactly as the CLI validates an order file),
// plus what only the service needs.
type OrderRequest struct {
	// ClientOrderID makes the request idempotent: the same id with the same
	// body returns the same order; with a different body, 409.
	ClientOrderID string `json:"client_order_id"`
	// Profile is a stored profile's name, optionally name@revision; the
	// latest revision when none is given.
	Profile string `json:"profile"`
	// Agent is seed (default), url (the machine downloads it from this
	// service, sha256-pinned) or embed.
	Agent string `json:"agent,omitempty"`
	// Arch is amd64 (default) or arm64.
	Arch string `json:"arch,omitempty"`
	// NetworkConfig also renders a network-config (DHCP on every Ethernet
	// interface), like the CLI's --network-config.
	NetworkConfig bool `json:"network_config,omitempty"`

	Hostname          string   `json:"hostname"`
	InstanceID        string   `json:"instance_id,omitempty"`
	AdminUser         string   `json:"admin_user,omitempty"`
	AdminPasswordHash string   `json:"admin_password_hash,omitempty"`
	SSHKeys           []string `json:"ssh_keys"`
	SSHPort           int      `json:"ssh_port,omitempty"`
	Allow             []string `json:"allow,omitempty"`

	// EdgeTarget is where the machine is at its provider, when known at
	// creation (else PUT /v1/orders/{id}/edge/target). It is part of the
	// request: a retry must name the same target.
	EdgeTarget *EdgeTarget `json:"edge_target,omitempty"`
}

// orderFields is the order document config decodes; its YAML keys are
// config.Order's, so config's key paths are the request's.
type orderFields struct {
	Hostname          string   `json:"hostname,omitempty"`
	InstanceID        string   `json:"instance_id,omitempty"`
	AdminUser         string   `json:"admin_user,omitempty"`
	AdminPasswordHash string   `json:"admin_password_hash,omitempty"`
	SSHKeys           []string `json:"ssh_keys,omitempty"`
	SSHPort           int      `json:"ssh_port,omitempty"`
	Allow             []string `json:"allow,omitempty"`
}

var clientOrderIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// DecodeOrderRequest decodes a POST /v1/orders body strictly and applies
// the defaults. The diagnostics are for a 400.
func DecodeOrderRequest(body []byte) (*OrderRequest, []Diagnostic) {
	var req OrderRequest
	if d := decodeStrictJSON(body, &req); d != nil {
		return nil, d
	}
	if req.Agent == "" {
		req.Agent = string(render.AgentSeed)
	}
	if req.Arch == "" {
		req.Arch = "amd64"
	}
	return &req, nil
}

// canonical is the request as stored and hashed: defaults applied, so
// `{"agent":"seed",…}` and the same body without agent are one order.
func (req *OrderRequest) canonical() ([]byte, string) {
	data, _ := json.Marshal(req) // plain struct of strings and ints: cannot fail
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// OrderResponse is an order as the API shows it.
type OrderResponse struct {
	ID              string            `json:"id"`
	ClientOrderID   string            `json:"client_order_id"`
	Status          string            `json:"status"`
	Profile         string            `json:"profile"`
	ProfileRevision int               `json:"profile_revision"`
	Hostname        string            `json:"hostname"`
	InstanceID      string            `json:"instance_id"`
	SSHPort         int               `json:"ssh_port"`
	Agent           AgentInfo         `json:"agent"`
	PlanDigest      string            `json:"plan_digest"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	FetchedAt       *time.Time        `json:"fetched_at,omitempty"`
	ReportedAt      *time.Time        `json:"reported_at,omitempty"`
	NoCloud         *NoCloudInfo      `json:"nocloud,omitempty"`
	Report          *ReportInfo       `json:"report,omitempty"`
	Files           map[string]string `json:"files,omitempty"`
	HostKeys        []plan.HostKey    `json:"host_keys,omitempty"`
	Result          json.RawMessage   `json:"result,omitempty"`
	// Edge is the order's provider edge: what hardbaked applies, where,
	// and what the last apply did. Single-order answers only.
	Edge     *EdgeInfo `json:"edge,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
}

// AgentInfo says how the machine gets the agent.
type AgentInfo struct {
	Kind   string `json:"kind"`
	Arch   string `json:"arch"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
}

// NoCloudInfo are the exact strings that boot the order by NoCloud-Net
// with cloud-init 22.4 and later.
type NoCloudInfo struct {
	URL string `json:"url"`
	// KernelArg goes on the kernel command line.
	KernelArg string `json:"kernel_arg"`
	// KernelArgGRUB is KernelArg with the ';' escaped for a GRUB config.
	KernelArgGRUB string `json:"kernel_arg_grub"`
	// SMBIOSSerial is the SMBIOS type 1 serial number to set.
	SMBIOSSerial string `json:"smbios_serial"`
	// QEMUSMBIOS is the value of QEMU's -smbios option.
	QEMUSMBIOS string `json:"qemu_smbios"`
}

// ReportInfo is where and with what key the machine signs its report.
type ReportInfo struct {
	URL string `json:"url"`
	Key string `json:"key"` // 64 hex digits
}

// newOrderID is 128 random bits in hex.
func newOrderID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("order id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func validOrderID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) *apiError {
	body, aerr := readBody(w, r, MaxOrderBytes)
	if aerr != nil {
		return aerr
	}
	req, diags := DecodeOrderRequest(body)
	if diags != nil {
		return &apiError{status: http.StatusBadRequest, msg: "malformed order request", diags: diags}
	}
	id, err := newOrderID()
	if err != nil {
		return internal(err)
	}
	no, aerr := s.prepareOrder(r, id, req, body, true)
	if aerr != nil {
		return s.refusedRetry(w, r, req, aerr)
	}
	ord, created, err := s.cfg.Store.CreateOrder(r.Context(), *no.order)
	if errors.Is(err, ErrStale) {
		// The profile has a newer revision than this node last saw:
		// render again for the one the database names (nothing was
		// stored). That insert is not conditional, as without the hint.
		s.profiles.forgetLatest(no.order.Profile)
		if no, aerr = s.prepareOrder(r, id, req, body, false); aerr != nil {
			return aerr
		}
		ord, created, err = s.cfg.Store.CreateOrder(r.Context(), *no.order)
	}
	if errors.Is(err, ErrConflict) {
		return errorf(http.StatusConflict, "client_order_id %q is taken by an order with a different request", req.ClientOrderID)
	}
	if err != nil {
		return storeError(err, "order")
	}
	status := http.StatusOK
	var warnings []string
	if created {
		status = http.StatusCreated
		warnings = no.warnings
		if _, full := s.queueEdge(r.Context(), ord); full {
			warnings = append(warnings, fmt.Sprintf("the edge apply queue is full: POST /v1/orders/%s/edge/apply later", ord.ID))
		}
	}
	s.writeOrder(w, r, ord, status, warnings)
	return nil
}

// writeOrder answers with ord as the API shows it, and its Location.
func (s *Server) writeOrder(w http.ResponseWriter, r *http.Request, ord Order, status int, warnings []string) {
	resp := s.orderResponse(ord)
	resp.Edge = s.edgeView(r.Context(), ord)
	resp.Warnings = warnings
	w.Header().Set("Location", "/v1/orders/"+ord.ID)
	writeJSON(w, status, resp)
}

// refusedRetry answers a request that prepareOrder refused with aerr. A
// refusal (422) can be a retry of an order that was created: its client
// timed out, and the profile's latest revision, or the service's agents,
// changed before it asked again. The order exists, so the same request
// gets it (200), as any retry does, and another request under its
// client_order_id gets 409; only a client_order_id with no order gets
// the refusal. The lookup costs a read on refusals alone.
func (s *Server) refusedRetry(w http.ResponseWriter, r *http.Request, req *OrderRequest, aerr *apiError) *apiError {
	if aerr.status != http.StatusUnprocessableEntity || !clientOrderIDRE.MatchString(req.ClientOrderID) {
		return aerr
	}
	ord, err := s.cfg.Store.OrderByClientOrderID(r.Context(), req.ClientOrderID)
	switch {
	case errors.Is(err, ErrNotFound):
		return aerr
	case err != nil:
		return storeError(err, "order")
	}
	if _, hash := req.canonical(); hash != ord.RequestHash {
		return errorf(http.StatusConflict, "client_order_id %q is taken by an order with a different request", req.ClientOrderID)
	}
	s.writeOrder(w, r, ord, http.StatusOK, nil)
	return nil
}

type preparedOrder struct {
	order    *NewOrder
	warnings []string
}

// prepareOrder validates the request with the CLI's code and renders the
// order's files.
//
// For "the latest revision" of a profile, with useHint, it renders for the
// revision this node last read as the latest (profileCache.latest), without
// reading the database, and marks the order IfLatest: the store's INSERT
// then checks that the revision is still the latest, with the same
// SHA-256, and stores nothing otherwise (ErrStale; the caller renders
// again without the hint). So a stale hint can cost a render, never an
// order made from an old revision; this saves a database round trip per
// order. Any refusal made under the hint is made again without it, so a
// client never reads diagnostics against a revision that is not the latest.
func (s *Server) prepareOrder(r *http.Request, id string, req *OrderRequest, body []byte, useHint bool) (*preparedOrder, *apiError) {
	if useHint {
		no, hinted, aerr := s.prepareOrderAs(r, id, req, body, true)
		if aerr == nil || !hinted {
			return no, aerr
		}
	}
	no, _, aerr := s.prepareOrderAs(r, id, req, body, false)
	return no, aerr
}

// prepareOrderAs is prepareOrder, one attempt; hinted says whether it used
// the hint.
func (s *Server) prepareOrderAs(r *http.Request, id string, req *OrderRequest, body []byte, useHint bool) (no *preparedOrder, hinted bool, aerr *apiError) {
	// Where each key is in the body: needed only for diagnostics, so
	// a valid request never pays for it.
	positions := sync.OnceValue(func() map[string]config.Pos { return bodyPositions(body) })
	var diags []Diagnostic
	bad := func(path, code, format string, args ...any) {
		p := lookupPos(positions(), path)
		diags = append(diags, Diagnostic{Code: code, Severity: "error", File: "request", Path: path, Line: p.Line, Column: p.Col, Message: fmt.Sprintf(format, args...)})
	}
	if req.ClientOrderID == "" {
		bad("client_order_id", string(config.CodeRequired), "required: 1–128 characters of A-Z a-z 0-9 . _ : - (starting with a letter or digit)")
	} else if !clientOrderIDRE.MatchString(req.ClientOrderID) {
		bad("client_order_id", CodeInvalidClientOrderID, "must be 1–128 characters of A-Z a-z 0-9 . _ : - (starting with a letter or digit)")
	}
	name, rev, perr := parseProfileRef(req.Profile)
	switch {
	case req.Profile == "":
		bad("profile", string(config.CodeRequired), "%s", perr)
	case perr != "":
		bad("profile", CodeInvalidProfileRef, "%s", perr)
	}
	switch render.AgentKind(req.Agent) {
	case render.AgentSeed, render.AgentURL, render.AgentEmbed:
	default:
		bad("agent", string(config.CodeInvalidChoice), "%q is not seed, url or embed", req.Agent)
	}
	if req.EdgeTarget != nil {
		req.EdgeTarget.check("edge_target", bad)
	}
	_, haveBin := s.cfg.Agents.forArch(req.Arch)
	if req.Arch != "amd64" && req.Arch != "arm64" {
		bad("arch", string(config.CodeInvalidChoice), "%q is not amd64 or arm64", req.Arch)
	} else if !haveBin {
		bad("arch", CodeNotFound, "this service has no agent binary for %s (see --agent-dir)", req.Arch)
	}
	var prof *config.Profile
	var pr ProfileRevision
	if perr == "" {
		var err error
		if c, ok := s.profiles.latest(name); ok && useHint && rev == 0 {
			pr, prof, hinted = c.rev, c.prof, true
		} else {
			pr, prof, err = s.profile(r.Context(), name, rev)
		}
		var fe profileDiags
		switch {
		case errors.Is(err, ErrNotFound) && rev > 0:
			bad("profile", CodeNotFound, "profile %q has no revision %d", name, rev)
		case errors.Is(err, ErrNotFound):
			bad("profile", CodeNotFound, "no profile named %q (PUT /v1/profiles/%s first)", name, name)
		case errors.As(err, &fe):
			diags = append(diags, fe...)
		case err != nil:
			return nil, hinted, storeError(err, "profile")
		}
	}
	// The order's own fields go through config exactly as an order file
	// does; positions put the diagnostics back into the request body.
	doc, _ := json.Marshal(orderFields{req.Hostname, req.InstanceID, req.AdminUser, req.AdminPasswordHash, req.SSHKeys, req.SSHPort, req.Allow})
	ord, src, err := config.DecodeOrder("request", doc)
	if err != nil {
		return nil, hinted, s.invalid(append(diags, diagnosticsOf(err, "request", positions())...), err)
	}
	if prof == nil {
		return nil, hinted, s.invalid(diags, nil)
	}
	if len(diags) > 0 {
		// Resolve the order anyway (when it can be) so one answer
		// lists every problem.
		if _, err := ord.Resolve(prof, src); err != nil {
			diags = append(diags, diagnosticsOf(err, "request", positions())...)
		}
		return nil, hinted, s.invalid(diags, nil)
	}
	agent := s.resolved[req.Agent+"/"+req.Arch]
	if agent == nil {
		return nil, hinted, internal(fmt.Errorf("no resolved agent %s for %s", req.Agent, req.Arch))
	}
	// bake is the CLI's own path from profile and order to seed: the
	// same resolution and rendering as `hardbake iso`, with the agent
	// resolved (read, checked, hashed) once at start rather than per order.
	res, err := bake.Seed(bake.Request{
		Profile: prof, Order: ord, Source: src,
		Resolved:      agent,
		NetworkConfig: req.NetworkConfig,
		// The machine sends its report here, signed with the order's key.
		Report: &render.ReportEndpoint{URL: s.reportURL(id), Key: hex.EncodeToString(s.cfg.Secrets.ReportKey(id))},
	})
	if err != nil {
		if d := diagnosticsOf(err, "request", positions()); d != nil {
			return nil, hinted, s.invalid(d, nil)
		}
		var be *bake.InputError
		if errors.As(err, &be) {
			// The service checked its agents at start: a refusal here is
			// its own fault, not the client's.
			return nil, hinted, internal(fmt.Errorf("agent for order: %w", err))
		}
		return nil, hinted, internal(fmt.Errorf("render order: %w", err))
	}
	m := res.Machine
	files := map[string][]byte{}
	for _, f := range res.Documents() {
		files[f.Name] = f.Data
	}
	canon, hash := req.canonical()
	return &preparedOrder{order: &NewOrder{
		ID: id, ClientOrderID: req.ClientOrderID, RequestHash: hash, Request: canon,
		Profile: pr.Name, ProfileRevision: pr.Revision, IfLatest: hinted, ProfileSHA256: pr.SHA256,
		Hostname: m.Hostname, InstanceID: m.InstanceID,
		AgentKind: string(agent.Kind), AgentArch: agent.Arch, AgentSHA256: agent.SHA256,
		PlanDigest: res.PlanDigest, SSHPort: res.SSHPort,
		TokenHash: TokenHash(s.cfg.Secrets.Token(id)), ReportKey: s.cfg.Secrets.ReportKey(id),
		Files: files, CreatedAt: s.now().UTC(), EdgeTarget: edgeTargetJSON(req.EdgeTarget),
	}, warnings: res.Warnings}, hinted, nil
}

func edgeTargetJSON(t *EdgeTarget) []byte {
	if t == nil {
		return nil
	}
	data, _ := json.Marshal(t) // strings and an int: cannot fail
	return data
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// profileDiags is a stored profile that no longer validates (the rules
// tightened since it was stored).
type profileDiags []Diagnostic

func (d profileDiags) Error() string { return "stored profile does not validate" }

// profile reads and decodes revision rev of name (0: the latest). Revisions
// are immutable, so a decoded one is cached by name and revision: only
// "the latest" needs a database read, of the revision's number alone (the
// latest can change on another node of a cluster), and no revision is
// read or decoded twice. Decoded profiles are shared read-only; render
// and bake never write to one.
func (s *Server) profile(ctx context.Context, name string, rev int) (ProfileRevision, *config.Profile, error) {
	if rev == 0 {
		latest, sum, err := s.cfg.Store.LatestRevision(ctx, name)
		if err != nil {
			return ProfileRevision{}, nil, err
		}
		if c, ok := s.profiles.get(name, latest); ok && c.rev.SHA256 == sum {
			s.profiles.noteLatest(name, latest)
			return c.rev, c.prof, nil
		}
		// Read it (below) even if a revision of that number is cached:
		// its document is not the one cached.
		rev = latest
		defer func() {
			if c, ok := s.profiles.get(name, latest); ok && c.rev.SHA256 == sum {
				s.profiles.noteLatest(name, latest)
			}
		}()
	} else if c, ok := s.profiles.get(name, rev); ok {
		return c.rev, c.prof, nil
	}
	pr, err := s.cfg.Store.Profile(ctx, name, rev)
	if err != nil {
		return pr, nil, err
	}
	if c, ok := s.profiles.get(pr.Name, pr.Revision); ok && c.rev.SHA256 == pr.SHA256 {
		return c.rev, c.prof, nil
	}
	file := fmt.Sprintf("profiles/%s@%d", pr.Name, pr.Revision)
	prof, err := config.DecodeProfile(file, pr.Doc)
	if err != nil {
		if d := diagnosticsOf(err, file, nil); d != nil {
			return pr, nil, profileDiags(d)
		}
		return pr, nil, err
	}
	pr.Doc = nil
	s.profiles.put(pr, prof)
	return pr, prof, nil
}

// invalid is the 422 for diags (err only when config returned a
// non-input error, which is ours).
func (s *Server) invalid(diags []Diagnostic, err error) *apiError {
	if len(diags) == 0 {
		if err != nil {
			return internal(err)
		}
		return internal(errors.New("validation failed without a diagnostic"))
	}
	return &apiError{status: http.StatusUnprocessableEntity, msg: "invalid order", diags: diags}
}

// parseProfileRef splits name[@revision].
func parseProfileRef(ref string) (string, int, string) {
	name, revStr, hasRev := strings.Cut(ref, "@")
	if ref == "" {
		return "", 0, "required: a stored profile's name, or name@revision"
	}
	if !profileNameRE.MatchString(name) {
		return "", 0, fmt.Sprintf("%q is not a profile name (lower-case letters, digits and hyphens), optionally @revision", ref)
	}
	if !hasRev {
		return name, 0, ""
	}
	rev, err := strconv.Atoi(revStr)
	if err != nil || rev < 1 || strconv.Itoa(rev) != revStr {
		return "", 0, fmt.Sprintf("revision %q: want a positive integer", revStr)
	}
	return name, rev, ""
}

func (s *Server) agentURL(sha, arch string) string {
	return s.cfg.PublicURL + "/agent/" + sha + "/" + render.SeedName(arch)
}

func (s *Server) reportURL(id string) string { return s.cfg.PublicURL + "/report/" + id }

func (s *Server) orderResponse(o Order) OrderResponse {
	resp := OrderResponse{
		ID: o.ID, ClientOrderID: o.ClientOrderID, Status: o.Status, Profile: o.Profile, ProfileRevision: o.ProfileRevision,
		Hostname: o.Hostname, InstanceID: o.InstanceID, SSHPort: o.SSHPort,
		Agent:      AgentInfo{Kind: o.AgentKind, Arch: o.AgentArch, SHA256: o.AgentSHA256},
		PlanDigest: o.PlanDigest, CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC(),
	}
	if resp.UpdatedAt.IsZero() {
		resp.UpdatedAt = resp.CreatedAt
	}
	if o.AgentKind == string(render.AgentURL) {
		resp.Agent.URL = s.agentURL(o.AgentSHA256, o.AgentArch)
	}
	if !o.FetchedAt.IsZero() {
		t := o.FetchedAt.UTC()
		resp.FetchedAt = &t
	}
	if !o.ReportedAt.IsZero() {
		t := o.ReportedAt.UTC()
		resp.ReportedAt = &t
	}
	if len(o.Report) > 0 {
		resp.Result = json.RawMessage(o.Report)
		var rep plan.Report
		if json.Unmarshal(o.Report, &rep) == nil {
			resp.HostKeys = rep.HostKeys
		}
	}
	if o.Revoked {
		return resp // its URLs are revoked: show none
	}
	u := s.cfg.PublicURL + "/nocloud/" + s.cfg.Secrets.Token(o.ID) + "/"
	arg := "ds=nocloud-net;s=" + u
	resp.NoCloud = &NoCloudInfo{URL: u, KernelArg: arg, KernelArgGRUB: strings.ReplaceAll(arg, ";", `\;`), SMBIOSSerial: arg, QEMUSMBIOS: "type=1,serial=" + arg}
	resp.Report = &ReportInfo{URL: s.reportURL(o.ID), Key: hex.EncodeToString(s.cfg.Secrets.ReportKey(o.ID))}
	base := "/v1/orders/" + o.ID + "/"
	resp.Files = map[string]string{"seed.iso": base + "seed.iso", "user-data": base + "user-data", "meta-data": base + "meta-data"}
	return resp
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	// The answer shows no file contents: the order's files stay in the
	// database.
	o, err := s.cfg.Store.OrderMeta(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	resp := s.orderResponse(o)
	resp.Edge = s.edgeView(r.Context(), o)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	o, err := s.cfg.Store.Cancel(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	s.isoCache.drop(id)
	resp := s.orderResponse(o)
	resp.Edge = s.edgeView(r.Context(), o)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Listing limits.
const (
	defaultPageSize = 100
	maxPageSize     = 500 // the store's own cap
)

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	for k := range q {
		if k != "status" && k != "limit" && k != "cursor" {
			return errorf(http.StatusBadRequest, "unknown query parameter %q (status, limit, cursor)", k)
		}
	}
	status := q.Get("status")
	if status != "" && !validStatus(status) {
		return errorf(http.StatusBadRequest, "status=%q: want one of %s", status, strings.Join(Statuses(), ", "))
	}
	limit := defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return errorf(http.StatusBadRequest, "limit=%q: want 1–%d", v, maxPageSize)
		}
		limit = n
	}
	page, err := s.cfg.Store.Orders(r.Context(), status, q.Get("cursor"), limit)
	if errors.Is(err, ErrNotFound) {
		return errorf(http.StatusBadRequest, "cursor=%q is not a cursor this service gave out", q.Get("cursor"))
	}
	if err != nil {
		return storeError(err, "orders")
	}
	out := make([]OrderResponse, len(page.Orders))
	for i, o := range page.Orders {
		out[i] = s.orderResponse(o)
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": out, "next_cursor": page.Next})
	return nil
}

func validStatus(s string) bool {
	for _, st := range Statuses() {
		if st == s {
			return true
		}
	}
	return false
}

// orderFile serves seed.iso, user-data, meta-data and network-config to
// the operator.
func (s *Server) orderFile(w http.ResponseWriter, r *http.Request) *apiError {
	id, file := r.PathValue("id"), r.PathValue("file")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	switch file {
	case "seed.iso", "user-data", "meta-data", "network-config":
	default:
		return errorf(http.StatusNotFound, "no file %q (seed.iso, user-data, meta-data, network-config)", file)
	}
	// A seed.iso built before needs only the order's status from the
	// database, not its files. The status check stays authoritative: a
	// cancel revokes the seed whatever the cache holds.
	if file == "seed.iso" {
		if _, ok := s.isoCache.get(id); ok {
			o, err := s.cfg.Store.OrderMeta(r.Context(), id)
			if err != nil {
				return storeError(err, "order")
			}
			if o.Revoked {
				return errorf(http.StatusGone, "order %s is cancelled", id)
			}
			if iso, ok := s.isoCache.get(id); ok {
				writeISO(w, iso)
				return nil
			}
			// Evicted meanwhile: build it again below.
		}
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	if o.Revoked {
		return errorf(http.StatusGone, "order %s is cancelled", id)
	}
	if file != "seed.iso" {
		data, ok := o.Files[file]
		if !ok {
			return errorf(http.StatusNotFound, "order %s has no %s", id, file)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(data)
		return nil
	}
	iso, aerr := s.seedISO(o)
	if aerr != nil {
		return aerr
	}
	writeISO(w, iso)
	return nil
}

func writeISO(w http.ResponseWriter, iso []byte) {
	w.Header().Set("Content-Type", "application/x-iso9660-image")
	w.Header().Set("Content-Disposition", `attachment; filename="seed.iso"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(iso)))
	_, _ = w.Write(iso)
}
