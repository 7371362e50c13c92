//go:build cgo && libsqlite3

package service

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// TestSeedISOCacheStatusAuthoritative: a cached seed.iso is served only
// while the database says the order stands. A cancel made elsewhere (on
// another node of a cluster, where this service's cache is not dropped)
// turns the next request into 410 all the same, and a missing order is
// 404 whatever the cache holds.
func TestSeedISOCacheStatusAuthoritative(t *testing.T) {
	e := newEnv(t)
	want(t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(t)), http.StatusCreated)
	o := e.createOrder(orderBody(t, "cache-1", sshKey(t), `, "agent": "url"`))
	first := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
	want(t, first, http.StatusOK)
	if _, ok := e.srv.isoCache.get(o.ID); !ok {
		t.Fatal("seed.iso not cached after the first fetch")
	}
	again := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
	want(t, again, http.StatusOK)
	if !bytes.Equal(first.body, again.body) {
		t.Fatal("cached seed.iso differs from the first one")
	}
	// Evicted between the status read and the answer: built again, same bytes.
	e.srv.isoCache.drop(o.ID)
	if r := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil); r.status != http.StatusOK || !bytes.Equal(r.body, first.body) {
		t.Fatalf("rebuilt seed.iso: %d, equal %v", r.status, bytes.Equal(r.body, first.body))
	}

	// Cancel in the store directly, as another node would: this
	// service's cache still holds the image.
	if _, err := e.store.CancelOrder(context.Background(), o.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.srv.isoCache.get(o.ID); !ok {
		t.Fatal("test premise: the image should still be cached")
	}
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil), http.StatusGone)

	// An id the database does not know is 404 even if the cache had it.
	ghost := "0123456789abcdef0123456789abcdef"
	e.srv.isoCache.put(ghost, first.body)
	want(t, e.op("GET", "/v1/orders/"+ghost+"/seed.iso", nil), http.StatusNotFound)
}

// TestLatestProfileNotStale: the decoded revisions are cached, but "the
// latest" is asked of the database on every order, so a revision stored
// elsewhere (another node) is the one the next order gets.
func TestLatestProfileNotStale(t *testing.T) {
	e := newEnv(t)
	doc := baselineDoc(t)
	want(t, e.op("PUT", "/v1/profiles/baseline", doc), http.StatusCreated)
	key := sshKey(t)
	if o := e.createOrder(orderBody(t, "latest-1", key, "")); o.ProfileRevision != 1 {
		t.Fatalf("first order: revision %d", o.ProfileRevision)
	}
	doc2 := append(bytes.Clone(doc), []byte("\n# revision 2\n")...)
	if _, _, err := e.store.PutProfile(context.Background(), "baseline", "application/yaml", doc2); err != nil {
		t.Fatal(err)
	}
	if o := e.createOrder(orderBody(t, "latest-2", key, "")); o.ProfileRevision != 2 {
		t.Fatalf("order after revision 2 was stored elsewhere: revision %d", o.ProfileRevision)
	}
	if o := e.createOrder(orderBody(t, "latest-3", key, `, "instance_id": "pinned"`)); o.ProfileRevision != 2 {
		t.Fatalf("third order: revision %d", o.ProfileRevision)
	}
}

// TestSeedWorkDir: seed.iso builds stage their files in Config.SeedWorkDir
// and leave nothing there; the image is the one `hardbake iso` writes for
// the order's files (same bytes as a build in the system temp dir).
func TestSeedWorkDir(t *testing.T) {
	work := t.TempDir()
	e := newEnvWith(t, &env{limit: DefaultReportLimit, seedWork: work})
	want(t, e.op("PUT", "/v1/profiles/baseline", baselineDoc(t)), http.StatusCreated)
	o := e.createOrder(orderBody(t, "work-1", sshKey(t), ""))
	r := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
	want(t, r, http.StatusOK)
	if left, err := os.ReadDir(work); err != nil || len(left) != 0 {
		t.Fatalf("workspace left behind: %v %v", left, err)
	}
	stored, err := e.store.GetOrder(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	res := &bake.Result{Result: &render.Result{UserData: stored.UserData, MetaData: stored.MetaData},
		Agent: &bake.Agent{Agent: render.Agent{Kind: render.AgentSeed, Arch: "amd64"}}}
	bin, _ := e.agents.forArch("amd64")
	res.Agent.Binary = bin
	img, err := res.Image(images.ISO)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Bytes(), r.body) {
		t.Fatal("seed.iso built in SeedWorkDir differs from a build in the system temp dir")
	}
	// The directory is really used: one that does not exist fails the
	// build (a 500, logged), where the system temp dir would not.
	bad := newEnvWith(t, &env{limit: DefaultReportLimit, seedWork: filepath.Join(work, "missing")})
	want(t, bad.op("PUT", "/v1/profiles/baseline", baselineDoc(t)), http.StatusCreated)
	o = bad.createOrder(orderBody(t, "work-2", sshKey(t), ""))
	want(t, bad.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil), http.StatusInternalServerError)
}
