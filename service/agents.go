package service

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/render"
)

// Agents are the first-boot agent binaries this service hands out, read
// once at start (so a binary replaced on disk cannot change a seed whose
// user-data already pins the old sha256).
type Agents struct {
	byArch map[string][]byte
	bySHA  map[string][]byte
}

// Arches are the architectures the agent is built for.
var Arches = []string{"amd64", "arm64"}

// LoadAgents reads hardbake-firstboot-linux-ARCH from dir for every arch
// present; at least one must be.
func LoadAgents(dir string) (*Agents, error) {
	a := &Agents{byArch: map[string][]byte{}, bySHA: map[string][]byte{}}
	for _, arch := range Arches {
		data, err := os.ReadFile(filepath.Join(dir, render.SeedName(arch)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("agent dir: %w", err)
		}
		// The CLI's check: a static ELF executable for arch. Checked once
		// here, so no order can pin a binary that cannot run.
		if err := bake.CheckAgentBinary(data, arch); err != nil {
			return nil, fmt.Errorf("agent %s is %w", filepath.Join(dir, render.SeedName(arch)), err)
		}
		a.add(arch, data)
	}
	if len(a.byArch) == 0 {
		return nil, fmt.Errorf("agent dir %s: no %s (run `make build`, or pass --agent-dir)", dir, render.SeedName("ARCH"))
	}
	return a, nil
}

// NewAgents wraps binaries by arch (tests and benchmarks); unlike
// LoadAgents it checks nothing.
func NewAgents(bins map[string][]byte) *Agents {
	a := &Agents{byArch: map[string][]byte{}, bySHA: map[string][]byte{}}
	for arch, data := range bins {
		a.add(arch, data)
	}
	return a
}

func (a *Agents) add(arch string, data []byte) {
	sum := sha256.Sum256(data)
	a.byArch[arch] = data
	a.bySHA[hex.EncodeToString(sum[:])] = data
}

func (a *Agents) forArch(arch string) ([]byte, bool) {
	b, ok := a.byArch[arch]
	return b, ok
}

func (a *Agents) bySum(sum string) ([]byte, bool) {
	b, ok := a.bySHA[sum]
	return b, ok
}
