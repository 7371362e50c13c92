//go:build cgo && libsqlite3

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"hardbake.dev/hardbake/store"
)

// defaultNetworkLatency is the one-way latency dqlite's raft timing is
// tuned for (app.WithNetworkLatency). It scales the heartbeat and the
// election timeout: 10 ms makes the survivors elect a new leader well
// within the 2 s after the leader dies (see docs/BENCHMARKS.md for
// the measured failover times); across data centres raise it to the real
// one-way latency, or spurious elections follow.
const defaultNetworkLatency = 10 * time.Millisecond

// clusterFlags are serve's cluster options.
type clusterFlags struct {
	join                []string
	bootstrap           bool
	certFile, keyFile   string
	networkLatency      time.Duration
	httpCert, httpKey   string
	clusterTLS          *store.ClusterTLS
	refuseBootstrapping bool
}

func (c *clusterFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.join, "join", nil, "`ADDR[,ADDR…]` dqlite addresses of running cluster nodes to join (first start only; a restarted node rejoins by itself)")
	fs.BoolVar(&c.bootstrap, "bootstrap", false, "start a NEW cluster in the empty data dir (cluster nodes only: without it a node with --cluster-cert, an empty dir and no --join refuses to start)")
	fs.StringVar(&c.certFile, "cluster-cert", "", "cluster certificate `FILE` (hardbaked cert): mutual TLS between dqlite nodes")
	fs.StringVar(&c.keyFile, "cluster-key", "", "cluster key `FILE` (hardbaked cert)")
	fs.DurationVar(&c.networkLatency, "network-latency", defaultNetworkLatency, "one-way network latency between nodes that raft's heartbeat and election timeouts are tuned for")
	fs.StringVar(&c.httpCert, "tls-cert", "", "serve the HTTP API over TLS with this certificate `FILE`")
	fs.StringVar(&c.httpKey, "tls-key", "", "key `FILE` for --tls-cert")
}

// resolve checks the cluster flags against the data directory (hasNode:
// it already holds a dqlite node) and loads the cluster TLS. secretGiven
// says whether --secret-file was passed.
func (c *clusterFlags) resolve(hasNode, secretGiven bool) error {
	if (c.certFile == "") != (c.keyFile == "") {
		return usagef("--cluster-cert and --cluster-key go together")
	}
	if (c.httpCert == "") != (c.httpKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if c.httpCert != "" {
		// Load it now: ServeTLS would only fail once the node is up.
		if _, err := tls.LoadX509KeyPair(c.httpCert, c.httpKey); err != nil {
			return usagef("--tls-cert/--tls-key: %v", err)
		}
	}
	if c.networkLatency < time.Millisecond || c.networkLatency > time.Second {
		return usagef("--network-latency: %s is not between 1ms and 1s", c.networkLatency)
	}
	for _, a := range c.join {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return usagef("--join: %q: %v", a, err)
		}
	}
	if len(c.join) > 0 && c.bootstrap {
		return usagef("--join and --bootstrap exclude each other: join the running cluster, or start a new one")
	}
	if len(c.join) > 0 && c.certFile == "" {
		return usagef("--join needs --cluster-cert and --cluster-key: nodes talk to each other only over mutual TLS (make them with `hardbaked cert`)")
	}
	if len(c.join) > 0 && !hasNode && !secretGiven {
		// A joining node would otherwise create a secret of its own, and
		// NoCloud URLs and report signatures would differ from node to
		// node.
		return usagef("--join needs --secret-file: the cluster's service secret (a copy of the first node's DATA/secret), shared by every node")
	}
	if c.certFile == "" {
		return nil // a single node: bootstraps on first start, as always
	}
	t, err := store.LoadClusterTLS(c.certFile, c.keyFile)
	if err != nil {
		return usagef("--cluster-cert: %v", err)
	}
	c.clusterTLS = t
	if !hasNode && len(c.join) == 0 && !c.bootstrap {
		// The dqlite trap: a cluster node started without its join list
		// on an empty directory would create a second, separate cluster.
		return usagef("the data directory holds no dqlite node and no --join was given: pass --join ADDR of a running node to join the cluster, or --bootstrap to start a NEW cluster (first node, first start only)")
	}
	c.refuseBootstrapping = !c.bootstrap
	return nil
}

func (c *clusterFlags) storeConfig(cfg store.Config) store.Config {
	cfg.Join = c.join
	cfg.TLS = c.clusterTLS
	cfg.RefuseBootstrap = c.refuseBootstrapping
	cfg.NetworkLatency = c.networkLatency
	return cfg
}

const clusterUsage = `usage: hardbaked cluster list   --peers ADDR[,ADDR…] --cluster-cert FILE --cluster-key FILE [--json]
       hardbaked cluster remove --peers ADDR[,ADDR…] --cluster-cert FILE --cluster-key FILE ID|ADDR

list shows the members, their roles and the leader; remove takes a stopped
node out of the cluster for good (stop it with SIGTERM first: it hands over).
`

// clusterCmd runs `hardbaked cluster list|remove`, talking to the nodes'
// dqlite ports directly with the cluster certificate: it works while the
// HTTP API is down and needs no API token, only what a node itself holds.
func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("cluster: want list or remove\n%s", clusterUsage)
	}
	sub := args[0]
	if sub != "list" && sub != "remove" {
		return usagef("cluster: unknown command %q\n%s", sub, clusterUsage)
	}
	fs := pflag.NewFlagSet("cluster "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	peers := fs.StringSlice("peers", []string{"127.0.0.1:9001"}, "dqlite `ADDR[,ADDR…]` of cluster nodes (any of them; the leader is found)")
	certFile := fs.String("cluster-cert", "", "cluster certificate `FILE`")
	keyFile := fs.String("cluster-key", "", "cluster key `FILE`")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usagef("cluster %s: %v", sub, err)
	}
	want := 0
	if sub == "remove" {
		want = 1
	}
	if fs.NArg() != want {
		return usagef("cluster %s: want %d argument(s), got %d\n%s", sub, want, fs.NArg(), clusterUsage)
	}
	for _, a := range *peers {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return usagef("cluster %s: --peers: %q: %v", sub, a, err)
		}
	}
	p := store.Peers{Addresses: *peers}
	switch {
	case *certFile != "" && *keyFile != "":
		t, err := store.LoadClusterTLS(*certFile, *keyFile)
		if err != nil {
			return usagef("cluster %s: --cluster-cert: %v", sub, err)
		}
		p.TLS = t
	case *certFile != "" || *keyFile != "":
		return usagef("cluster %s: --cluster-cert and --cluster-key go together", sub)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if sub == "remove" {
		m, err := p.Remove(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed node %d (%s)\n", m.ID, m.Address)
		return nil
	}
	ms, err := p.Members(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tROLE\tLEADER")
	for _, m := range ms {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.ID, m.Address, m.Role, strings.Repeat("*", boolInt(m.Leader)))
	}
	return tw.Flush()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nodeExists reports whether dir already holds a dqlite node (go-dqlite's
// info.yaml), without creating anything.
func nodeExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "info.yaml"))
	return err == nil
}
