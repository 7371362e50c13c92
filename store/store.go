//go:build cgo && libsqlite3

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/canonical/go-dqlite/app"
	"github.com/canonical/go-dqlite/client"
)

// DatabaseName is the name of the dqlite database hardbaked keeps its data
// in.
const DatabaseName = "hardbaked"

// Config configures Open.
type Config struct {
	// Dir is the node's data directory. It is created (0700) when missing
	// and must be writable.
	Dir string
	// Address is the host:port this node's dqlite listens on and other
	// nodes reach it by, or, for a node that will never be part of a
	// cluster, a local abstract unix socket (LocalAddress(Dir): no TCP
	// port, and no 40 ms Nagle stalls on large rows). It is recorded in
	// Dir when the node is created; on a restart it may be left empty,
	// and if given it must match the recorded one. A data directory keeps
	// the address it was created with, TCP or local.
	Address string
	// Join lists addresses of existing cluster members. With an empty Dir
	// and no Join, Open bootstraps a new cluster (see RefuseBootstrap).
	// Ignored on a restart: the node knows its cluster.
	Join []string
	// RefuseBootstrap makes Open fail instead of bootstrapping a new
	// cluster when Dir holds no node and Join is empty. Cluster front ends
	// set it unless the operator explicitly asked for a new cluster, so
	// that a forgotten --join cannot silently create a second, separate
	// cluster next to the first.
	RefuseBootstrap bool
	// TLS enables mutual TLS between nodes (nil: plain TCP).
	TLS *ClusterTLS
	// NetworkLatency tunes raft's timeouts (heartbeat, election) to the
	// expected round trip; 0 keeps dqlite's default. A small value makes
	// failover faster on a fast network.
	NetworkLatency time.Duration
	// Logger receives dqlite's and the store's messages (nil: discard).
	Logger *slog.Logger
	// Retry bounds the retries of a transaction; zero fields take the
	// DefaultRetry() values.
	Retry RetryPolicy
	// Now is the clock for created/fetched/reported times (nil: time.Now).
	Now func() time.Time

	// migrations overrides the schema (tests only: upgrade from version N).
	migrations []migration
}

// Store is hardbaked's database: one embedded dqlite node and the SQL
// database on it. All methods are safe for concurrent use. Writes are
// serialized inside the process (dqlite answers concurrent writers with
// "database is locked"), and every transaction is retried within
// Config.Retry on busy, locked and leader-change errors.
type Store struct {
	app      *app.App
	db       *sql.DB
	log      *slog.Logger
	retry    RetryPolicy
	now      func() time.Time
	writeSem chan struct{} // one write transaction at a time
	// createQ holds CreateOrder calls waiting to be written; whoever
	// holds the write slot takes up to maxCreateBatch of them into one
	// transaction (group commit, see batch.go).
	createQ chan *createReq
	// stopped is closed once Close holds the write slot: no batch runs
	// after it, so a create still queued can only fail.
	stopped chan struct{}
	// batchHook, when set (tests only), is called with the size of each
	// create batch before its transaction runs.
	batchHook func(int)
	closed    atomic.Bool
	startKind StartKind
	clusterID string
	dir       string
	// commitErr, when set (tests only), is called after each successful
	// commit; an error it returns is reported as that commit's outcome.
	commitErr func() error
	rawReady  atomic.Bool // bench_raw table created
}

// Open starts (or restarts) this node, waits until it is part of its
// cluster, opens the database and brings its schema to the latest version.
//
// Which start it is depends on Dir (see StartKind): a Dir holding a node
// restarts that node; an empty Dir with Join joins that cluster; an empty
// Dir without Join bootstraps a new cluster, unless RefuseBootstrap is set.
// The ctx bounds the whole start, including waiting for the cluster.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hasNode, err := CheckDataDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	var kind StartKind
	switch {
	case hasNode:
		kind = StartRestart
	case len(cfg.Join) > 0:
		kind = StartJoin
	default:
		kind = StartBootstrap
	}
	if kind == StartBootstrap && cfg.RefuseBootstrap {
		return nil, fmt.Errorf("%s holds no dqlite node and no cluster to join was given: refusing to bootstrap a new, separate cluster", cfg.Dir)
	}
	if kind != StartRestart {
		if err := checkAddress(cfg.Address, cfg.TLS != nil, kind == StartJoin); err != nil {
			return nil, err
		}
	} else if cfg.TLS != nil {
		// A node created on a local socket cannot turn into a cluster
		// node: go-dqlite's TLS proxy would try to listen on TCP at it.
		recorded, err := recordedAddress(cfg.Dir)
		if err != nil {
			return nil, err
		}
		if IsLocalAddress(recorded) {
			return nil, fmt.Errorf("%w: %s holds a single node on the local socket %s, which cannot take cluster TLS: a cluster node needs a host:port from its first start", ErrInvalid, cfg.Dir, recorded)
		}
	}

	opts := []app.Option{app.WithLogFunc(dqliteLogFunc(log))}
	if cfg.Address != "" {
		opts = append(opts, app.WithAddress(cfg.Address))
	}
	if kind == StartJoin {
		opts = append(opts, app.WithCluster(cfg.Join))
	}
	if cfg.TLS != nil {
		if cfg.TLS.Listen == nil || cfg.TLS.Dial == nil {
			return nil, fmt.Errorf("%w: TLS needs both a listen and a dial configuration", ErrInvalid)
		}
		opts = append(opts, app.WithTLS(cfg.TLS.Listen, cfg.TLS.Dial))
	}
	if cfg.NetworkLatency > 0 {
		opts = append(opts, app.WithNetworkLatency(cfg.NetworkLatency))
	}
	if kind == StartJoin && cfg.TLS != nil {
		if err := checkJoinTLS(ctx, cfg.Join, cfg.TLS); err != nil {
			return nil, err
		}
	}
	if kind == StartRestart && len(cfg.Join) > 0 {
		log.Info("data directory holds a node: join addresses ignored, it restarts in its recorded cluster", "dir", cfg.Dir)
	}
	if kind == StartBootstrap {
		// Loud on purpose: bootstrapping where a join was meant is the
		// one mistake that splits a provider's data in two.
		log.Warn("bootstrapping a NEW dqlite cluster", "dir", cfg.Dir, "address", cfg.Address)
	}

	a, err := app.New(cfg.Dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("start dqlite node in %s: %w", cfg.Dir, err)
	}
	s := &Store{
		app:       a,
		log:       log,
		retry:     cfg.Retry.withDefaults(),
		now:       cfg.Now,
		writeSem:  make(chan struct{}, 1),
		createQ:   make(chan *createReq, createQueueLen),
		stopped:   make(chan struct{}),
		startKind: kind,
		dir:       cfg.Dir,
	}
	if s.now == nil {
		s.now = time.Now
	}
	fail := func(err error) (*Store, error) {
		if s.db != nil {
			s.db.Close()
		}
		a.Close()
		return nil, err
	}
	if err := a.Ready(ctx); err != nil {
		return fail(fmt.Errorf("dqlite node %s did not become ready: %w", a.Address(), err))
	}
	db, err := a.Open(ctx, DatabaseName)
	if err != nil {
		return fail(fmt.Errorf("open database %s: %w", DatabaseName, err))
	}
	s.db = db
	migrations := cfg.migrations
	if migrations == nil {
		migrations = schema()
	}
	if err := s.migrate(ctx, migrations); err != nil {
		return fail(err)
	}
	if err := s.tx(ctx, readTx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'cluster_id'`).Scan(&s.clusterID)
	}); err != nil {
		return fail(fmt.Errorf("read cluster id: %w", err))
	}
	log.Info("store open", "start", string(kind), "node", a.ID(), "address", a.Address(), "cluster", s.clusterID)
	return s, nil
}

// StartKind says whether Open bootstrapped, joined or restarted the node.
func (s *Store) StartKind() StartKind { return s.startKind }

// ClusterID is a random identifier chosen once when the cluster's database
// was created; every node of one cluster reports the same one.
func (s *Store) ClusterID() string { return s.clusterID }

// Dir is the node's data directory.
func (s *Store) Dir() string { return s.dir }

// NodeID is this node's dqlite ID.
func (s *Store) NodeID() uint64 { return s.app.ID() }

// Address is this node's dqlite address.
func (s *Store) Address() string { return s.app.Address() }

// Close stops the node cleanly: it hands leadership and its voting role
// over to another node (retried until ctx ends, since go-dqlite's Handover
// does not retry its last step), then closes the database and the node.
// The node stays a cluster member; leaving for good is a removal from a
// node that stays. Close always releases the node, also when the handover
// failed, and then reports that failure. Give ctx a deadline (a few
// seconds): it is the only bound on the handover retries. Closing twice is
// a no-op.
func (s *Store) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	var herr error
	for attempt := 1; ; attempt++ {
		herr = s.app.Handover(ctx)
		if herr == nil || ctx.Err() != nil {
			break
		}
		s.log.Warn("handover failed, retrying", "attempt", attempt, "err", herr)
		if !sleepCtx(ctx, s.retry.delay(attempt)) {
			break
		}
	}
	if herr != nil {
		herr = fmt.Errorf("hand over: %w", herr)
	}
	// Wait for in-flight writes so none is cut off mid-commit.
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
	}
	close(s.stopped)
	dberr := s.db.Close()
	aerr := s.app.Close()
	if aerr != nil {
		aerr = fmt.Errorf("close dqlite node: %w", aerr)
	}
	return errors.Join(herr, dberr, aerr)
}

// Role reports this node's role in the cluster and who leads it, as the
// leader sees it. It fails when no leader can be reached.
func (s *Store) Role(ctx context.Context) (Role, error) {
	r := Role{ID: s.app.ID(), Address: s.app.Address()}
	// Ask the leader: a node that is not a voter does not hold the
	// current membership itself.
	cli, err := s.app.Leader(ctx)
	if err != nil {
		return r, fmt.Errorf("find leader: %w", err)
	}
	defer cli.Close()
	nodes, err := cli.Cluster(ctx)
	if err != nil {
		return r, fmt.Errorf("cluster members: %w", err)
	}
	for _, n := range nodes {
		if n.ID == r.ID {
			r.Role = roleName(n.Role)
		}
	}
	leader, err := cli.Leader(ctx)
	if err != nil {
		return r, fmt.Errorf("leader: %w", err)
	}
	if leader != nil {
		r.LeaderAddress = leader.Address
		r.Leader = leader.ID == r.ID
	}
	return r, nil
}

func roleName(r client.NodeRole) string {
	switch r {
	case client.Voter:
		return "voter"
	case client.StandBy:
		return "stand-by"
	case client.Spare:
		return "spare"
	}
	return strings.ToLower(r.String())
}

// dqliteLogFunc routes go-dqlite's log calls to slog.
func dqliteLogFunc(log *slog.Logger) client.LogFunc {
	return func(l client.LogLevel, format string, a ...any) {
		lvl := slog.LevelDebug
		switch l {
		case client.LogInfo:
			lvl = slog.LevelInfo
		case client.LogWarn:
			lvl = slog.LevelWarn
		case client.LogError:
			lvl = slog.LevelError
		}
		log.Log(context.Background(), lvl, "dqlite: "+fmt.Sprintf(format, a...))
	}
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
