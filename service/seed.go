package service

import (
	"fmt"
	"sync"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// seedISO builds the order's seed exactly as `hardbake iso` does for the
// same input: the stored user-data, meta-data (and network-config), plus the
// agent binary when the agent comes from the seed. An order's files never
// change, so the image is cached by order id.
func (s *Server) seedISO(o Order) ([]byte, *apiError) {
	if iso, ok := s.isoCache.get(o.ID); ok {
		return iso, nil
	}
	docs := &render.Result{UserData: o.Files["user-data"], MetaData: o.Files["meta-data"], NetworkConfig: o.Files["network-config"]}
	if docs.UserData == nil || docs.MetaData == nil {
		return nil, internal(fmt.Errorf("order %s: stored without user-data or meta-data", o.ID))
	}
	agent := &bake.Agent{Agent: render.Agent{Kind: render.AgentKind(o.AgentKind), Arch: o.AgentArch, SHA256: o.AgentSHA256}}
	if agent.Kind == render.AgentSeed {
		bin, ok := s.cfg.Agents.bySum(o.AgentSHA256)
		if !ok {
			return nil, internal(fmt.Errorf("order %s: agent binary sha256 %s is not loaded (agent dir changed since the order was made)", o.ID, o.AgentSHA256))
		}
		agent.Binary = bin
	}
	// bake.Result's seed files, built as an ISO, are what `hardbake iso`
	// writes; the image is built in memory (the workspace go-diskfs
	// packs from is in cfg.SeedWorkDir).
	img, err := s.images.Build(images.ISO, (&bake.Result{Result: docs, Agent: agent}).SeedFiles())
	if err != nil {
		return nil, internal(fmt.Errorf("build seed.iso: %w", err))
	}
	iso := img.Bytes()
	s.isoCache.put(o.ID, iso)
	return iso, nil
}

// isoCache keeps recently built seeds, bounded by total size; the oldest
// entry goes first.
type isoCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order []string
	items map[string][]byte
}

func newISOCache(maxBytes int) *isoCache {
	return &isoCache{max: maxBytes, items: map[string][]byte{}}
}

func (c *isoCache) get(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.items[id]
	return b, ok
}

func (c *isoCache) put(id string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) > c.max {
		return
	}
	if _, ok := c.items[id]; ok {
		return
	}
	for c.size+len(b) > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= len(c.items[old])
		delete(c.items, old)
	}
	c.items[id] = b
	c.order = append(c.order, id)
	c.size += len(b)
}

func (c *isoCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.items[id]; ok {
		c.size -= len(b)
		delete(c.items, id)
		for i, x := range c.order {
			if x == id {
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
}

// profileCache holds decoded profile revisions, and for each profile
// name the revision this node last read as its latest: a hint only, since
// another node can add a revision at any time. prepareOrder renders with
// it and has the store check it in the order's own INSERT.
type profileCache struct {
	mu        sync.Mutex
	items     map[string]cachedProfile
	latestRev map[string]int
}

type cachedProfile struct {
	rev  ProfileRevision
	prof *config.Profile
}

// maxCachedProfiles bounds the cache; when full it starts over (profiles
// are few, and decoding one again costs under a millisecond).
const maxCachedProfiles = 256

func newProfileCache() *profileCache {
	return &profileCache{items: map[string]cachedProfile{}, latestRev: map[string]int{}}
}

func profileKey(name string, rev int) string { return fmt.Sprintf("%s@%d", name, rev) }

func (c *profileCache) get(name string, rev int) (cachedProfile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.items[profileKey(name, rev)]
	return p, ok
}

func (c *profileCache) put(rev ProfileRevision, prof *config.Profile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= maxCachedProfiles {
		clear(c.items)
		clear(c.latestRev)
	}
	c.items[profileKey(rev.Name, rev.Revision)] = cachedProfile{rev, prof}
}

// latest returns the cached revision last noted as name's latest.
func (c *profileCache) latest(name string) (cachedProfile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev, ok := c.latestRev[name]
	if !ok {
		return cachedProfile{}, false
	}
	p, ok := c.items[profileKey(name, rev)]
	return p, ok
}

// noteLatest records that the database named rev as name's latest
// revision (a cached one).
func (c *profileCache) noteLatest(name string, rev int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latestRev[name] < rev {
		c.latestRev[name] = rev
	}
}

// forgetLatest drops name's hint: a newer revision exists.
func (c *profileCache) forgetLatest(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.latestRev, name)
}
