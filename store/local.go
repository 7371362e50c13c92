package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// LocalAddress is the dqlite address for a node that is not part of a
// cluster: an abstract unix socket (Linux) named after the absolute data
// directory, e.g. "@hardbaked-3f2a…".
//
// Why not TCP on loopback: without TLS, libdqlite listens on a TCP address
// itself and does not set TCP_NODELAY, so every result larger than one
// response buffer (an order's user-data, ~14 KB) stalls about 40 ms on
// Nagle's algorithm meeting the client's delayed ACK (docs/BENCHMARKS.md,
// BenchmarkReadOrder). A unix socket has neither, needs no free port, and
// cannot be reached from another host.
//
// The name only has to be unique when the node is created: go-dqlite
// records the address in the data directory (info.yaml), and a restart
// uses the recorded one, also when the directory is reached by another
// path later. Two stores with different data directories (tests, two
// services on one machine) get different names. An abstract socket has no
// file permissions: like a TCP port on 127.0.0.1, any local process in the
// same network namespace can connect to it.
func LocalAddress(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDataDir, dir, err)
	}
	sum := sha256.Sum256([]byte(abs))
	return "@hardbaked-" + hex.EncodeToString(sum[:12]), nil
}

// IsLocalAddress reports whether addr is an abstract unix socket address
// (see LocalAddress) rather than a host:port.
func IsLocalAddress(addr string) bool { return strings.HasPrefix(addr, "@") }

// maxUnixName is the longest name a unix socket address holds (sun_path,
// 108 bytes, less the leading NUL of an abstract name).
const maxUnixName = 107

// checkAddress validates the address a new node is created with. A local
// (abstract unix socket) address only works for a node outside any
// cluster: other hosts cannot reach it, and go-dqlite's TLS proxy listens
// on TCP.
func checkAddress(addr string, tls, join bool) error {
	if addr == "" {
		return fmt.Errorf("%w: a new node needs an address (host:port, or a local one: LocalAddress)", ErrInvalid)
	}
	if !IsLocalAddress(addr) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: address %q: %w", ErrInvalid, addr, err)
		}
		return nil
	}
	switch {
	case len(addr) < 2 || len(addr) > maxUnixName || strings.ContainsRune(addr, 0):
		return fmt.Errorf("%w: local address %q: want @ and 1–%d bytes of name", ErrInvalid, addr, maxUnixName-1)
	case tls:
		return fmt.Errorf("%w: local address %q with cluster TLS: a cluster node needs a host:port its peers can reach", ErrInvalid, addr)
	case join:
		return fmt.Errorf("%w: local address %q cannot join a cluster: its peers could not reach it; give a host:port", ErrInvalid, addr)
	}
	return nil
}

// recordedAddress reads the address go-dqlite recorded in dir's info.yaml
// when the node was created.
func recordedAddress(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, nodeInfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	var info struct {
		Address string `yaml:"Address"`
	}
	if err := yaml.Unmarshal(data, &info); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrDataDir, filepath.Join(dir, nodeInfoFile), err)
	}
	return info.Address, nil
}
