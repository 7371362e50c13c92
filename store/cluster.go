//go:build cgo && libsqlite3

package store

import (
	"context"
	"crypto/tls"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

// Member is one node of a cluster as its leader sees it.
type Member struct {
	ID      uint64 `json:"id"`
	Address string `json:"address"`
	Role    string `json:"role"` // "voter", "stand-by" or "spare"
	Leader  bool   `json:"leader"`
}

// Peers reaches a running cluster from outside a node (the `hardbaked
// cluster` commands, tests, benchmarks): the addresses of some of its
// nodes and the cluster's TLS (nil for plain TCP).
type Peers struct {
	Addresses []string
	TLS       *ClusterTLS
}

func (p Peers) dial() client.DialFunc {
	if p.TLS == nil {
		return client.DefaultDialFunc
	}
	return client.DialFuncWithTLS(client.DefaultDialFunc, p.TLS.Dial)
}

func (p Peers) nodeStore(ctx context.Context) (client.NodeStore, error) {
	if len(p.Addresses) == 0 {
		return nil, fmt.Errorf("%w: no cluster address given", ErrInvalid)
	}
	ns := client.NewInmemNodeStore()
	infos := make([]client.NodeInfo, 0, len(p.Addresses))
	for _, a := range p.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%w: cluster address %q: %w", ErrInvalid, a, err)
		}
		infos = append(infos, client.NodeInfo{Address: a})
	}
	if err := ns.Set(ctx, infos); err != nil {
		return nil, err
	}
	return ns, nil
}

// leader connects to the cluster's leader through any of the addresses.
func (p Peers) leader(ctx context.Context) (*client.Client, error) {
	ns, err := p.nodeStore(ctx)
	if err != nil {
		return nil, err
	}
	cli, err := client.FindLeader(ctx, ns, client.WithDialFunc(p.dial()))
	if err != nil {
		return nil, fmt.Errorf("no leader reachable at %s: %w", strings.Join(p.Addresses, ","), err)
	}
	return cli, nil
}

// Members lists the cluster's nodes, their roles and which one leads,
// asked of the leader (the only node whose view is authoritative).
func (p Peers) Members(ctx context.Context) ([]Member, error) {
	cli, err := p.leader(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return members(ctx, cli)
}

func members(ctx context.Context, cli *client.Client) ([]Member, error) {
	nodes, err := cli.Cluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster members: %w", err)
	}
	leader, err := cli.Leader(ctx)
	if err != nil {
		return nil, fmt.Errorf("leader: %w", err)
	}
	out := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, Member{ID: n.ID, Address: n.Address, Role: roleName(n.Role), Leader: leader != nil && leader.ID == n.ID})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Address, b.Address) })
	return out, nil
}

// Remove takes a node out of the cluster for good, by ID or address. The
// node should be stopped first (SIGTERM: it hands its leadership and its
// vote over); the leader itself is refused, since removing it from under
// itself would leave the cluster without a leader until an election.
func (p Peers) Remove(ctx context.Context, node string) (Member, error) {
	cli, err := p.leader(ctx)
	if err != nil {
		return Member{}, err
	}
	defer cli.Close()
	ms, err := members(ctx, cli)
	if err != nil {
		return Member{}, err
	}
	id, _ := strconv.ParseUint(node, 10, 64)
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Address == node || (id != 0 && m.ID == id) })
	if i < 0 {
		return Member{}, fmt.Errorf("%w: %q is not a member (ID or address)", ErrNotFound, node)
	}
	m := ms[i]
	if m.Leader {
		return m, fmt.Errorf("%w: %s (%d) is the leader: stop it first (SIGTERM hands leadership over), then remove it", ErrInvalid, m.Address, m.ID)
	}
	if err := cli.Remove(ctx, m.ID); err != nil {
		return m, fmt.Errorf("remove node %d (%s): %w", m.ID, m.Address, err)
	}
	return m, nil
}

// Members lists the cluster this node belongs to (see Peers.Members).
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	cli, err := s.app.Leader(ctx)
	if err != nil {
		return nil, fmt.Errorf("find leader: %w", err)
	}
	defer cli.Close()
	return members(ctx, cli)
}

// RawClient is a plain dqlite SQL client of a cluster, with no node of its
// own: the baseline of the cluster benchmarks (single-row inserts into the
// same scratch table as Store.RawInsert, through the same leader) and the
// proof in tests that a client without the cluster's certificate cannot
// reach the database.
type RawClient struct {
	db *sql.DB
}

// OpenRaw connects to the cluster's database and creates the scratch table
// bench_raw. It fails if the leader cannot be reached (for example with the
// wrong certificate).
func (p Peers) OpenRaw(ctx context.Context) (*RawClient, error) {
	ns, err := p.nodeStore(ctx)
	if err != nil {
		return nil, err
	}
	drv, err := driver.New(ns, driver.WithDialFunc(p.dial()), driver.WithConnectionTimeout(2*time.Second), driver.WithContextTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(rawConnector{drv})
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("raw client: %w", err)
	}
	return &RawClient{db: db}, nil
}

// Insert is one single-row INSERT as its own transaction.
func (r *RawClient) Insert(ctx context.Context, payload []byte) error {
	if _, err := r.db.ExecContext(ctx, `INSERT INTO bench_raw (payload) VALUES (?)`, nonNil(payload)); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	return nil
}

// Close closes the client's connection.
func (r *RawClient) Close() error { return r.db.Close() }

type rawConnector struct{ drv *driver.Driver }

func (c rawConnector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	conn, err := c.drv.OpenConnector(DatabaseName)
	if err != nil {
		return nil, err
	}
	return conn.Connect(ctx)
}

func (c rawConnector) Driver() sqldriver.Driver { return c.drv }

// checkJoinTLS fails fast when none of the join addresses accepts this
// node's cluster certificate: go-dqlite would otherwise retry the join in
// the background until Open's context ends, with the reason only in its
// log. A peer that cannot be reached at all is not a verdict (it may be
// restarting); a TLS refusal from every reachable peer is.
func checkJoinTLS(ctx context.Context, join []string, c *ClusterTLS) error {
	var errs []error
	refused := 0
	for _, addr := range join {
		err := probeTLS(ctx, addr, c.Dial)
		if err == nil {
			return nil
		}
		var rec tls.RecordHeaderError
		var cv *tls.CertificateVerificationError
		var ae tls.AlertError
		if errors.As(err, &cv) || errors.As(err, &ae) || errors.As(err, &rec) || strings.Contains(err.Error(), "tls:") {
			refused++
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if refused > 0 && refused == len(errs) {
		return fmt.Errorf("%w: no node to join accepts this node's cluster certificate (every node must use the certificate `hardbaked cert` made for this cluster): %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// probeTLS completes a TLS handshake with addr and then waits briefly for
// the server's verdict on our certificate, which TLS 1.3 sends only after
// the client considers the handshake done.
func probeTLS(ctx context.Context, addr string, conf *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: conf}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	_, err = conn.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil // accepted: the server waits for dqlite's protocol
	}
	if err == nil {
		return nil
	}
	return err
}

// Transfer makes the node at addr the leader (no-op if it leads already).
// Raft hands leadership only to a node whose log is up to date, so a
// successful transfer to a restarted node also proves it caught up.
func (p Peers) Transfer(ctx context.Context, addr string) error {
	cli, err := p.leader(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	ms, err := members(ctx, cli)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Address == addr })
	if i < 0 {
		return fmt.Errorf("%w: %s is not a member", ErrNotFound, addr)
	}
	if ms[i].Leader {
		return nil
	}
	if err := cli.Transfer(ctx, ms[i].ID); err != nil {
		return fmt.Errorf("transfer leadership to %s: %w", addr, err)
	}
	return nil
}
