// Package store is hardbaked's database: profiles, orders and first-boot
// reports in an embedded dqlite node (github.com/canonical/go-dqlite), with
// all of the service's SQL inside this package.
//
// The implementation needs cgo and the build tag libsqlite3 (Debian 12:
// libdqlite-dev, libsqlite3-dev); without them only the pure-Go parts
// (types, errors, CheckDataDir, LoadClusterTLS, Measure) are compiled, so
// `go build ./...` and `go vet ./...` still work with CGO_ENABLED=0 for the
// CLI and the agent, which never import this package.
//
// # Use
//
//	s, err := store.Open(ctx, store.Config{Dir: dir, Address: "127.0.0.1:9001"})
//	...
//	defer s.Close(shutdownCtx) // hand over, then stop
//
// Open checks the data directory before dqlite sees it, starts the node
// (bootstrap, join or restart: see StartKind), waits until it is ready and
// migrates the schema. Every method runs in one transaction through a
// single helper that retries, within Config.Retry, on busy, locked and
// leader-change errors, and never on anything else; writes are serialized
// inside the process. Concurrent CreateOrder calls share a transaction
// (group commit, batch.go): one raft round for several orders, each with
// its own outcome. Errors the caller can act on wrap one of the
// sentinel errors in errors.go (ErrNotFound, ErrConflict, ErrRevoked,
// ErrReplay, ErrInvalidTransition, ErrInvalid ...).
//
// # Cluster
//
// Nothing above the store changes when the node is part of a cluster: any
// node serves every method, dqlite forwards the SQL to the leader, and a
// leader change is retried inside the store. Reads are served by the
// leader too (dqlite has no follower reads), so a read after an
// acknowledged write sees it on every node. Because a commit cut off by a
// leader change may still have been applied, each write method is
// idempotent or recognises its own earlier commit on the retry (see the
// method docs); across client retries, CreateOrder's ClientOrderID does the
// same.
//
// Config.RefuseBootstrap is how front ends make dqlite's trap loud: an
// empty Dir with no Join would otherwise found a second, separate cluster.
// Peers reaches a cluster from outside a node (members, leadership
// transfer, removal, a raw SQL client), with the same ClusterTLS.
//
// One limit of go-dqlite v1.11.5 with TLS: each node listens on an
// abstract unix socket named after its ID, and every bootstrap node has
// the same ID, so two TLS clusters' first nodes cannot run in one network
// namespace; go-dqlite's only knob is SNAP_INSTANCE_NAME, which prefixes
// that name (the cluster tests set it per cluster).
//
// # Secrets
//
// The NoCloud token is stored only as HashToken(token). The store never
// sees the token, so it cannot give it back: a caller that must answer a
// retried CreateOrder (Existed) with the same NoCloud URL derives the token
// from the order ID and a key of its own (for example HMAC-SHA256 over the
// ID with a key file every node shares), instead of keeping it.
package store
