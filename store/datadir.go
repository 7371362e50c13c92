package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// nodeInfoFile is the file go-dqlite's app package writes into the data
// directory when a node is first created (its ID and address). Its presence
// is what distinguishes a restart from a new node.
const nodeInfoFile = "info.yaml"

// StartKind says how Open brought the node up.
type StartKind string

// How a node starts.
const (
	// StartBootstrap: the data directory was empty and no Join addresses
	// were given, so this node created a new cluster of its own.
	StartBootstrap StartKind = "bootstrap"
	// StartJoin: the data directory was empty and the node joined the
	// cluster at the Join addresses.
	StartJoin StartKind = "join"
	// StartRestart: the data directory held a node, which was restarted
	// with its own ID, address and cluster membership (Join is ignored).
	StartRestart StartKind = "restart"
)

// CheckDataDir makes sure dir can hold a dqlite node before dqlite sees
// it: libdqlite aborts the whole process (instead of returning an error)
// when the directory is missing or unwritable. A missing directory is
// created with mode 0700 (its parents too). It reports whether the
// directory already holds a node. The error wraps ErrDataDir.
func CheckDataDir(dir string) (hasNode bool, err error) {
	if dir == "" {
		return false, fmt.Errorf("%w: no data directory given", ErrDataDir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrDataDir, dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return false, fmt.Errorf("%w: create %s: %w", ErrDataDir, abs, err)
		}
	case err != nil:
		return false, fmt.Errorf("%w: %s: %w", ErrDataDir, abs, err)
	case !fi.IsDir():
		return false, fmt.Errorf("%w: %s is not a directory", ErrDataDir, abs)
	}
	// Permission bits say little when running as root or under ACLs:
	// create and remove a file to prove the directory is writable.
	probe, err := os.CreateTemp(abs, ".hardbake-probe-*")
	if err != nil {
		return false, fmt.Errorf("%w: %s is not writable: %w", ErrDataDir, abs, err)
	}
	name := probe.Name()
	if _, err := probe.Write([]byte("probe")); err != nil {
		probe.Close()
		os.Remove(name)
		return false, fmt.Errorf("%w: %s is not writable: %w", ErrDataDir, abs, err)
	}
	probe.Close()
	if err := os.Remove(name); err != nil {
		return false, fmt.Errorf("%w: %s: remove probe file: %w", ErrDataDir, abs, err)
	}
	_, err = os.Stat(filepath.Join(abs, nodeInfoFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		entries, rerr := os.ReadDir(abs)
		if rerr != nil {
			return false, fmt.Errorf("%w: %s: %w", ErrDataDir, abs, rerr)
		}
		// A directory with dqlite files but no info.yaml is a node whose
		// identity was lost; starting a fresh node over its raft log would
		// mix two histories.
		for _, e := range entries {
			n := e.Name()
			if n == "cluster.yaml" || n == "metadata1" || n == "metadata2" {
				return false, fmt.Errorf("%w: %s holds dqlite state (%s) but no %s: refusing to start a new node over it", ErrDataDir, abs, n, nodeInfoFile)
			}
		}
		return false, nil
	default:
		return false, fmt.Errorf("%w: %s: %w", ErrDataDir, abs, err)
	}
}
