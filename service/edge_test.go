//go:build cgo && libsqlite3

package service

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"hardbake.dev/hardbake/edge"
)

// GET /v1/orders/{id}/edge returns the provider's document for the order's
// own SSH port (here a random one, stable per instance-id), the same bytes
// every time; bad parameters are 400, a cancelled order 410.
func TestOrderEdge(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	o := e.createOrder(orderBody(t, "edge-0001", sshKey(t), ""))

	r := e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=ovh&ip=203.0.113.10", nil)
	want(t, r, http.StatusOK)
	var doc edge.Document
	r.json(t, &doc)
	if doc.Provider != "ovh" || doc.SSHPort != o.SSHPort || doc.InstanceID != o.InstanceID || doc.IP != "203.0.113.10" {
		t.Fatalf("document %+v for order port %d instance %s", doc, o.SSHPort, o.InstanceID)
	}
	if !strings.Contains(string(r.body), `"destinationPort": `+strconv.Itoa(o.SSHPort)) {
		t.Errorf("no OVH rule for the order's SSH port %d:\n%s", o.SSHPort, r.body)
	}
	again := e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=ovh&ip=203.0.113.10", nil)
	if string(again.body) != string(r.body) {
		t.Errorf("a second request gave other bytes")
	}
	h := e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=hetzner", nil)
	want(t, h, http.StatusOK)
	var hd map[string]any
	if err := json.Unmarshal(h.body, &hd); err != nil || hd["provider"] != "hetzner" {
		t.Fatalf("hetzner: %v %s", err, h.body)
	}
	// baseline has no backup: section.
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/backup?provider=ovh", nil), http.StatusNotFound)

	want(t, e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=aws", nil), http.StatusBadRequest)
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=ovh&ip=2001:db8::1", nil), http.StatusBadRequest)
	want(t, e.op("GET", "/v1/orders/"+strings.Repeat("0", 32)+"/edge?provider=ovh", nil), http.StatusNotFound)
	want(t, e.op("DELETE", "/v1/orders/"+o.ID, nil), http.StatusOK)
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/edge?provider=ovh", nil), http.StatusGone)
}

// A profile with a backup: section gets its backup document, with the VPS
// service name given.
func TestOrderBackup(t *testing.T) {
	e := newEnv(t)
	doc := strings.Replace(string(baselineDoc(t)), "name: baseline", "name: backed", 1) +
		"\nbackup:\n  provider: ovh-vps\n  time: \"04:30\"\n"
	want(t, e.op("PUT", "/v1/profiles/backed", []byte(doc)), http.StatusCreated)
	body := strings.Replace(string(orderBody(t, "backup-0001", sshKey(t), "")), `"profile": "baseline"`, `"profile": "backed"`, 1)
	o := e.createOrder([]byte(body))
	r := e.op("GET", "/v1/orders/"+o.ID+"/backup?provider=ovh&vps=vps-1234.vps.ovh.net", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), "/vps/vps-1234.vps.ovh.net/automatedBackup/reschedule") || !strings.Contains(string(r.body), "04:30") {
		t.Fatalf("backup document:\n%s", r.body)
	}
}
