package service

import (
	"fmt"
	"net/http"
	"sync"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// seedISO builds the order's seed exactly as `hardbake iso` does for the
// same input: the stored user-data, meta-data (and network-config), plus the
// agent binary when the agent comes from the seed. An order's files never
// change, so the image is cached by order id.
func (s *Server) seedISO(r *http.Request, o Order) ([]byte, *apiError) {
	if iso, ok := s.isoCache.get(o.ID); ok {
		return iso, nil
	}
	docs := &render.Result{}
	for _, name := range []string{"user-data", "meta-data", "network-config"} {
		data, err := s.cfg.Store.OrderFile(r.Context(), o.ID, name)
		if err != nil {
			if name == "network-config" && isNotFound(err) {
				continue
			}
			return nil, storeError(err, name)
		}
		switch name {
		case "user-data":
			docs.UserData = data
		case "meta-data":
			docs.MetaData = data
		default:
			docs.NetworkConfig = data
		}
	}
	agent := &bake.Agent{Agent: render.Agent{Kind: render.AgentKind(o.AgentKind), Arch: o.AgentArch, SHA256: o.AgentSHA256}}
	if agent.Kind == render.AgentSeed {
		bin, ok := s.cfg.Agents.bySum(o.AgentSHA256)
		if !ok {
			return nil, internal(fmt.Errorf("order %s: agent binary sha256 %s is not loaded (agent dir changed since the order was made)", o.ID, o.AgentSHA256))
		}
		agent.Binary = bin
	}
	// bake.Result.Image is what `hardbake iso` writes, built in memory.
	img, err := (&bake.Result{Result: docs, Agent: agent}).Image(images.ISO)
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
