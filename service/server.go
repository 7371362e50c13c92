package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// Config is what a Server is made of. Store, Secrets and APIToken are
// required.
type Config struct {
	Store   Store
	Secrets *Secrets
	// APIToken is the operators' bearer token.
	APIToken []byte
	// PublicURL is the base URL machines reach this service at
	// (http://HOST:PORT, no trailing slash): NoCloud-Net, agent and report
	// URLs are built on it.
	PublicURL string
	// ReportDeadline is how long an order may stay created or fetched
	// without a report before the sweeper marks it timed-out.
	ReportDeadline time.Duration
	// Agents are the agent binaries this service puts on seeds, embeds, or
	// serves for agent: url.
	Agents *Agents
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
	// ReportLimit bounds report posts per order and per client address.
	ReportLimit RateLimit
	// Edge, when it holds credentials, makes the service apply each
	// order's edge firewall and backup policy itself (RunEdgeWorkers).
	Edge *EdgeConfig
	// SeedWorkDir is where a seed.iso build makes its short-lived
	// workspace (go-diskfs packs an ISO from a directory; the image itself
	// is built in memory). Empty: the system temp dir. On a tmpfs (systemd's
	// RuntimeDirectory=, under /run) a first seed.iso costs about a fifth
	// of what it costs with the workspace on a disk file system
	// (docs/BENCHMARKS.md).
	SeedWorkDir string
}

// Server is the hardbaked HTTP service.
type Server struct {
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	metrics  *metrics
	limiter  *limiter
	isoCache *isoCache
	images   images.Builder // builds seed.iso in cfg.SeedWorkDir
	profiles *profileCache
	// resolved are the agents by "kind/arch", resolved once by bake.
	resolved map[string]*bake.Agent
	handler  http.Handler
	// edge applies orders' edge rules in the background; nil without
	// credentials.
	edge *edgeRunner
}

// New checks cfg and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Secrets == nil {
		return nil, errors.New("service: Store and Secrets are required")
	}
	if len(cfg.APIToken) < 16 {
		return nil, fmt.Errorf("service: the API token is %d bytes; use at least 16 (e.g. openssl rand -hex 32)", len(cfg.APIToken))
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if !strings.HasPrefix(cfg.PublicURL, "http://") && !strings.HasPrefix(cfg.PublicURL, "https://") {
		return nil, fmt.Errorf("service: public URL %q must start with http:// or https://", cfg.PublicURL)
	}
	if cfg.ReportDeadline <= 0 {
		cfg.ReportDeadline = 30 * time.Minute
	}
	if cfg.Agents == nil {
		cfg.Agents = &Agents{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReportLimit == (RateLimit{}) {
		cfg.ReportLimit = DefaultReportLimit
	}
	s := &Server{cfg: cfg, now: cfg.Now, log: cfg.Logger, tokenSum: sha256.Sum256(cfg.APIToken), metrics: newMetrics(), isoCache: newISOCache(64 << 20), profiles: newProfileCache()}
	if s.now == nil {
		s.now = time.Now
	}
	s.images = images.Builder{WorkDir: cfg.SeedWorkDir}
	s.limiter = newLimiter(cfg.ReportLimit, s.now)
	if cfg.Edge != nil && (cfg.Edge.Credentials.OVH != nil || cfg.Edge.Credentials.Hetzner != "") {
		s.edge = newEdgeRunner(*cfg.Edge)
	}
	s.resolved = map[string]*bake.Agent{}
	for _, arch := range Arches {
		bin, ok := cfg.Agents.forArch(arch)
		if !ok {
			continue
		}
		for _, kind := range []render.AgentKind{render.AgentSeed, render.AgentURL, render.AgentEmbed} {
			mode := string(kind)
			if kind == render.AgentURL {
				mode = "url=" + s.agentURL(sha256Hex(bin), arch)
			}
			a, err := bake.ResolveAgent(bake.AgentRequest{Mode: mode, Arch: arch, Binary: bin})
			if err != nil {
				return nil, fmt.Errorf("service: agent for %s: %w", arch, err)
			}
			s.resolved[string(kind)+"/"+arch] = a
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the whole HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	op := func(pattern string, h func(http.ResponseWriter, *http.Request) *apiError) {
		mux.Handle(pattern, s.instrument(s.operator(h)))
	}
	open := func(pattern string, h func(http.ResponseWriter, *http.Request) *apiError) {
		mux.Handle(pattern, s.instrument(h))
	}
	op("PUT /v1/profiles/{name}", s.putProfile)
	op("GET /v1/profiles/{name}", s.getProfile)
	op("GET /v1/profiles", s.listProfiles)
	op("POST /v1/orders", s.createOrder)
	op("GET /v1/orders", s.listOrders)
	op("GET /v1/orders/{id}", s.getOrder)
	op("DELETE /v1/orders/{id}", s.cancelOrder)
	op("GET /v1/orders/{id}/{file}", s.orderFile)
	op("GET /v1/orders/{id}/edge", s.orderEdge)
	op("GET /v1/orders/{id}/backup", s.orderEdge)
	op("PUT /v1/orders/{id}/edge/target", s.putEdgeTarget)
	op("POST /v1/orders/{id}/edge/apply", s.applyEdgeNow)
	op("GET /metrics", s.serveMetrics)
	open("GET /nocloud/{token}/{file}", s.nocloud)
	open("GET /agent/{sha256}/{name}", s.agentBinary)
	open("POST /report/{id}", s.report)
	open("GET /healthz", s.healthz)
	open("/", func(http.ResponseWriter, *http.Request) *apiError {
		return &apiError{status: http.StatusNotFound, msg: "no such endpoint"}
	})
	return mux
}

// apiError is a handler's failure: the status and what the client reads.
type apiError struct {
	status int
	msg    string
	diags  []Diagnostic
	err    error // logged, never sent: internal detail
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, msg: "internal error", err: err}
}

// storeError maps the Store's errors to responses; what is left is a 500
// (dqlite busy or leader changes were already retried inside the store).
func storeError(err error, what string) *apiError {
	switch {
	case errors.Is(err, ErrNotFound):
		return errorf(http.StatusNotFound, "%s not found", what)
	case errors.Is(err, ErrConflict):
		return errorf(http.StatusConflict, "%s conflicts with a stored one", what)
	case errors.Is(err, ErrTransition):
		return errorf(http.StatusConflict, "%s: not allowed in its current status", what)
	case errors.Is(err, ErrReplay):
		return errorf(http.StatusConflict, "%s: replayed (nonce already used)", what)
	case errors.Is(err, ErrRevoked):
		return errorf(http.StatusGone, "%s: the order was cancelled", what)
	case errors.Is(err, ErrInvalid):
		return errorf(http.StatusBadRequest, "%s: %v", what, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, msg: "request cancelled or timed out", err: err}
	}
	return internal(err)
}

type errorBody struct {
	Error       string       `json:"error"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// statusRecorder remembers the status a handler wrote, for logs and
// metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// instrument runs h, writes its error as JSON, logs the request with any
// secret in the path redacted, and records latency.
func (s *Server) instrument(h func(http.ResponseWriter, *http.Request) *apiError) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if e := h(rec, r); e != nil {
			if e.status == http.StatusUnauthorized {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="hardbaked"`)
			}
			writeJSON(rec, e.status, errorBody{Error: e.msg, Diagnostics: e.diags})
			if e.err != nil {
				s.log.Error("request failed", "method", r.Method, "path", RedactPath(r.URL.Path), "err", e.err)
			}
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		s.metrics.observe(route, rec.status, d)
		s.log.Info("request", "method", r.Method, "path", RedactPath(r.URL.Path), "status", rec.status,
			"bytes", rec.bytes, "ms", float64(d.Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

// RedactPath hides the secret part of a path (the NoCloud-Net token) so it
// can be logged. Every log line about a request goes through it.
func RedactPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/nocloud/")
	if !ok {
		return p
	}
	if _, file, ok := strings.Cut(rest, "/"); ok {
		return "/nocloud/REDACTED/" + file
	}
	return "/nocloud/REDACTED"
}

// operator requires the operators' bearer token. Both sides are hashed
// before the constant-time compare so neither the token's content nor its
// length leaks through timing.
func (s *Server) operator(h func(http.ResponseWriter, *http.Request) *apiError) func(http.ResponseWriter, *http.Request) *apiError {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		auth := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(auth, " ")
		if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return errorf(http.StatusUnauthorized, "missing bearer token (Authorization: Bearer TOKEN)")
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			return errorf(http.StatusUnauthorized, "invalid bearer token")
		}
		return h(w, r)
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	role, err := s.cfg.Store.Role(ctx)
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, msg: "database unavailable", err: err}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "role": role})
	return nil
}

// Sweep moves orders that reported nothing within the deadline to
// timed-out, once.
func (s *Server) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	return s.cfg.Store.TimeOut(ctx, now.Add(-s.cfg.ReportDeadline))
}

// RunSweeper sweeps every interval until ctx ends.
func (s *Server) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Error("deadline sweep failed", "err", err)
			} else if n > 0 {
				s.log.Info("orders timed out", "count", n, "deadline", s.cfg.ReportDeadline.String())
			}
		}
	}
}
