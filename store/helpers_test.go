//go:build cgo && libsqlite3

package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago: dqlite records its address in the data directory, so it needs a
// real port up front rather than ":0".
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// clock is a settable clock for the store's timestamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openStore starts a real single dqlite node in dir (a new temp dir when
// empty) and closes it when the test ends. Nodes are started one after
// another: creating several app.Apps at once in a process is not safe.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, nodeInfoFile)); cfg.Address == "" && err != nil {
		cfg.Address = freeAddr(t) // a new node; a restarted one keeps its own
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPutProfile(t testing.TB, s *Store, name, doc string) Profile {
	t.Helper()
	p, _, err := s.PutProfile(ctxT(t), name, "application/yaml", []byte(doc))
	if err != nil {
		t.Fatalf("PutProfile(%s): %v", name, err)
	}
	return p
}

// newOrder builds a NewOrder for client order id cid against profile p;
// the request body is derived from cid and body.
func newOrder(p Profile, cid, body string) NewOrder {
	req := fmt.Sprintf(`{"client_order_id":%q,"hostname":%q}`, cid, body)
	token := "token-" + cid + "-" + body
	return NewOrder{
		ID:              NewOrderID(),
		ClientOrderID:   cid,
		RequestSHA256:   sha256.Sum256([]byte(req)),
		Request:         []byte(req),
		ProfileName:     p.Name,
		ProfileRevision: p.Revision,
		UserData:        []byte("#cloud-config\nhostname: " + body + "\n"),
		MetaData:        []byte("instance-id: " + cid + "\n"),
		TokenHash:       HashToken(token),
		ReportKey:       []byte("report-key-" + cid + "-0123456789"),
	}
}

func mustCreate(t testing.TB, s *Store, n NewOrder) Order {
	t.Helper()
	r, err := s.CreateOrder(ctxT(t), n)
	if err != nil {
		t.Fatalf("CreateOrder(%s): %v", n.ClientOrderID, err)
	}
	if r.Existed {
		t.Fatalf("CreateOrder(%s): existed", n.ClientOrderID)
	}
	return r.Order
}

func dirOf(t testing.TB, s *Store) string {
	t.Helper()
	return s.Dir()
}
