//go:build cgo && libsqlite3

// Command hardbaked is hardbake as a service: profiles, orders, seeds,
// NoCloud-Net and first-boot reports, in an embedded dqlite database.
//
//	hardbaked serve --data-dir DIR --listen 127.0.0.1:8080 --api-token-file FILE
//
// Exit codes: 0 clean stop (SIGTERM, SIGINT), 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/edge/apply"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/service"
	"hardbake.dev/hardbake/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: hardbaked serve --data-dir DIR --listen HOST:PORT --api-token-file FILE [flags]
       hardbaked cert --out DIR
       hardbaked cluster list|remove --peers ADDR[,ADDR…] --cluster-cert FILE --cluster-key FILE
       hardbaked version

serve runs one embedded dqlite node and the HTTP API (see README, "hardbaked quick start").
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "cert":
		err = certCmd(args[1:], stdout, stderr)
	case "cluster":
		err = clusterCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "hardbaked", version)
	default:
		err = usagef("unknown command %q\n%s", args[0], usage)
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "hardbaked:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "hardbaked:", err)
		return exitFailure
	}
}

type serveFlags struct {
	dataDir, listen, tokenFile, publicURL, agentDir, secretFile, dqliteAddr, logFormat string
	deadline, sweep, shutdown                                                          time.Duration
	edgeCreds                                                                          string
	edgeTimeout                                                                        time.Duration
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	var cf clusterFlags
	cf.register(fs)
	fs.StringVar(&f.dataDir, "data-dir", "", "state `DIR` (created 0700): the dqlite node and the service secret")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "HTTP `HOST:PORT`")
	fs.StringVar(&f.tokenFile, "api-token-file", "", "`FILE` holding the operators' bearer token (mode 0600 or stricter)")
	fs.StringVar(&f.publicURL, "public-url", "", "`URL` machines reach this service at (default: http://LISTEN)")
	fs.DurationVar(&f.deadline, "report-deadline", 30*time.Minute, "orders with no report this long after their first fetch (or creation) become timed-out")
	fs.StringVar(&f.agentDir, "agent-dir", "", "`DIR` with hardbake-firstboot-linux-ARCH (default: $HARDBAKE_AGENT_DIR, else beside hardbaked)")
	fs.StringVar(&f.secretFile, "secret-file", "", "service secret `FILE` (default: DATA/secret, created on first start; share it between cluster nodes)")
	fs.StringVar(&f.dqliteAddr, "dqlite-address", "127.0.0.1:9001", "`HOST:PORT` of this dqlite node (recorded on first start); a single node (no --cluster-cert) given none listens on a unix socket private to this machine instead")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&f.sweep, "sweep-interval", 30*time.Second, "how often to look for orders past the report deadline")
	fs.DurationVar(&f.shutdown, "shutdown-timeout", 15*time.Second, "how long SIGTERM waits for requests in flight and the dqlite handover")
	fs.StringVar(&f.edgeCreds, "edge-credentials", "", "`FILE` with the providers' API credentials (mode 0600 or stricter): hardbaked then applies each order's edge firewall and backup policy itself")
	fs.DurationVar(&f.edgeTimeout, "edge-apply-timeout", 15*time.Minute, "bound on applying one order's edge at every provider")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	if f.dataDir == "" {
		return usagef("--data-dir is required")
	}
	if f.tokenFile == "" {
		return usagef("--api-token-file is required")
	}
	if f.deadline < time.Minute {
		return usagef("--report-deadline: %s is shorter than a minute; a machine needs minutes to boot", f.deadline)
	}
	if f.sweep <= 0 {
		return usagef("--sweep-interval: must be positive")
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usagef("--listen: %v", err)
	}
	if f.publicURL == "" {
		host, _, _ := net.SplitHostPort(f.listen)
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return usagef("--public-url is required when --listen is on every address (%s): machines need a reachable URL", f.listen)
		}
		f.publicURL = "http://" + f.listen
		if cf.httpCert != "" {
			f.publicURL = "https://" + f.listen
		}
	}
	if !strings.HasPrefix(f.publicURL, "http://") && !strings.HasPrefix(f.publicURL, "https://") {
		return usagef("--public-url: %q must start with http:// or https://", f.publicURL)
	}
	var log *slog.Logger
	switch f.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		return usagef("--log-format: %q is not text or json", f.logFormat)
	}

	// Cluster flags are checked before anything is written.
	if err := cf.resolve(nodeExists(filepath.Join(f.dataDir, "dqlite")), fs.Changed("secret-file")); err != nil {
		return err
	}
	token, err := readToken(f.tokenFile)
	if err != nil {
		return err
	}
	if f.edgeTimeout < time.Second {
		return usagef("--edge-apply-timeout: %s is too short", f.edgeTimeout)
	}
	var edgeCfg *service.EdgeConfig
	if f.edgeCreds != "" {
		creds, err := readEdgeCredentials(f.edgeCreds)
		if err != nil {
			return err
		}
		edgeCfg = &service.EdgeConfig{Credentials: creds, ApplyTimeout: f.edgeTimeout}
	}
	if err := checkDataDir(f.dataDir); err != nil {
		return err
	}
	if f.secretFile == "" {
		f.secretFile = filepath.Join(f.dataDir, "secret")
	}
	secrets, err := service.LoadOrCreateSecret(f.secretFile)
	if err != nil {
		return err
	}
	agentDir, err := findAgentDir(f.agentDir)
	if err != nil {
		return err
	}
	agents, err := service.LoadAgents(agentDir)
	if err != nil {
		return err
	}

	nodeDir := filepath.Join(f.dataDir, "dqlite")
	hasNode, err := store.CheckDataDir(nodeDir)
	if err != nil {
		return err
	}
	addr := f.dqliteAddr
	switch {
	case hasNode && !fs.Changed("dqlite-address"):
		addr = "" // the node knows its address (TCP if an older hardbaked created it)
	case cf.clusterTLS == nil && !fs.Changed("dqlite-address"):
		// A new single node: nothing outside this process talks to its
		// dqlite, and a unix socket spares reads of large rows the
		// 40 ms Nagle stall of libdqlite's TCP listener (see
		// store.LocalAddress).
		if addr, err = store.LocalAddress(nodeDir); err != nil {
			return err
		}
	}
	openCtx, cancelOpen := context.WithTimeout(ctx, time.Minute)
	st, err := store.Open(openCtx, cf.storeConfig(store.Config{Dir: nodeDir, Address: addr, Logger: log.With("component", "store")}))
	cancelOpen()
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	closeStore := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), f.shutdown)
		defer cancel()
		return st.Close(cctx)
	}

	srv, err := service.New(service.Config{
		Store: service.DQLite{S: st}, Secrets: secrets, APIToken: token, PublicURL: f.publicURL,
		ReportDeadline: f.deadline, Agents: agents, Logger: log, Edge: edgeCfg,
		SeedWorkDir: runtimeDir(),
	})
	if err != nil {
		return errors.Join(err, closeStore())
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listen: %w", err), closeStore())
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() { defer close(swept); srv.RunSweeper(sweepCtx, f.sweep) }()
	edgeCtx, stopEdge := context.WithCancel(context.Background())
	edgeDone := make(chan struct{})
	go func() { defer close(edgeDone); srv.RunEdgeWorkers(edgeCtx) }()
	served := make(chan error, 1)
	go func() {
		if cf.httpCert != "" {
			served <- hs.ServeTLS(ln, cf.httpCert, cf.httpKey)
			return
		}
		served <- hs.Serve(ln)
	}()
	log.Info("hardbaked serving", "version", version, "listen", ln.Addr().String(), "public_url", f.publicURL,
		"data_dir", f.dataDir, "agent_dir", agentDir, "report_deadline", f.deadline.String(), "edge_apply", edgeProviders(edgeCfg))

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: finishing requests in flight, then handing dqlite over")
	case serveErr = <-served:
	}
	// Order matters: no request may reach a closed store, so HTTP stops
	// first, then the sweeper, then the node hands over and closes.
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdown)
	shutErr := hs.Shutdown(sctx)
	cancel()
	stopSweep()
	<-swept
	stopEdge() // applies in flight are cut short and record that
	<-edgeDone
	closeErr := closeStore()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err := errors.Join(serveErr, shutErr, closeErr); err != nil {
		return err
	}
	log.Info("hardbaked stopped")
	return nil
}

// readToken reads the operators' token; a file others can read is refused
// like ssh refuses a readable private key.
func readToken(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("--api-token-file: %v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, usagef("--api-token-file: %s has mode %04o; others must not read it (chmod 600)", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read API token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n") {
		return nil, usagef("--api-token-file: %s must hold one token of at least 16 characters, no spaces (e.g. openssl rand -hex 32)", path)
	}
	return []byte(tok), nil
}

// readEdgeCredentials reads --edge-credentials: a file others can read is
// refused like the token file; the document is edge/apply's strict one,
// and a refusal names file:line:column and the key, never a value.
func readEdgeCredentials(path string) (apply.Credentials, error) {
	st, err := os.Stat(path)
	if err != nil {
		return apply.Credentials{}, usagef("--edge-credentials: %v", err)
	}
	if !st.Mode().IsRegular() {
		return apply.Credentials{}, usagef("--edge-credentials: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return apply.Credentials{}, usagef("--edge-credentials: %s has mode %04o; others must not read it (chmod 600)", path, st.Mode().Perm())
	}
	if st.Size() > apply.MaxCredentialsBytes {
		return apply.Credentials{}, usagef("--edge-credentials: %s is larger than %d bytes", path, apply.MaxCredentialsBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return apply.Credentials{}, fmt.Errorf("read edge credentials: %w", err)
	}
	creds, err := apply.ParseCredentials(path, data)
	if err != nil {
		return apply.Credentials{}, usagef("--edge-credentials:\n%v", err)
	}
	return creds, nil
}

// edgeProviders names the providers hardbaked applies for, for the start
// log line (never a credential).
func edgeProviders(cfg *service.EdgeConfig) string {
	if cfg == nil {
		return "none (render only)"
	}
	var names []string
	for _, p := range []string{"ovh", "hetzner"} {
		if cfg.Credentials.Has(p) {
			names = append(names, p)
		}
	}
	return strings.Join(names, ",")
}

// checkDataDir creates DIR 0700 when missing and refuses one that others
// can enter: it holds the service secret and every order's report key.
func checkDataDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		return os.Chmod(dir, 0o700) // MkdirAll's mode passes through the umask
	case err != nil:
		return fmt.Errorf("--data-dir: %w", err)
	case !st.IsDir():
		return usagef("--data-dir: %s is not a directory", dir)
	case st.Mode().Perm()&0o077 != 0:
		return usagef("--data-dir: %s has mode %04o; it holds secrets, make it 0700 (chmod 700, or StateDirectoryMode=0700)", dir, st.Mode().Perm())
	}
	return nil
}

func findAgentDir(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if dir := os.Getenv("HARDBAKE_AGENT_DIR"); dir != "" {
		return dir, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find agent dir: %w (pass --agent-dir)", err)
	}
	dir := filepath.Dir(exe)
	for _, arch := range service.Arches {
		if _, err := os.Stat(filepath.Join(dir, render.SeedName(arch))); err == nil {
			return dir, nil
		}
	}
	return "", usagef("no agent binaries (%s) beside %s; run `make build` or pass --agent-dir", render.SeedName("ARCH"), exe)
}

// runtimeDir is systemd's RuntimeDirectory= ($RUNTIME_DIRECTORY, the first
// when there are several), a tmpfs under /run private to the unit: seed.iso
// builds make their short-lived workspace there (service.Config.SeedWorkDir).
// Empty outside systemd: the system temp dir.
func runtimeDir() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	return dir
}
