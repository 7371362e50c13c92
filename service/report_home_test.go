//go:build cgo && libsqlite3

package service

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"hardbake.dev/hardbake/agent"
	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
)

// TestReportSignatureVectors: the vectors the agent's sender (python3) is
// tested with are what SignReport produces and verifyReport accepts.
func TestReportSignatureVectors(t *testing.T) {
	data, err := os.ReadFile("../agent/testdata/report-signature-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []struct {
		Key       string `json:"key"`
		OrderID   string `json:"order_id"`
		Timestamp string `json:"timestamp"`
		Nonce     string `json:"nonce"`
		Body      string `json:"body"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(data, &vecs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vecs {
		key, _ := hex.DecodeString(v.Key)
		sec, _ := strconv.ParseInt(v.Timestamp, 10, 64)
		sr, err := SignReport(key, v.OrderID, time.Unix(sec, 0), v.Nonce, []byte(v.Body))
		if err != nil {
			t.Fatal(err)
		}
		if sr.Signature != v.Signature || sr.Timestamp != v.Timestamp {
			t.Errorf("%s: SignReport %s at %s, vector %s", v.OrderID, sr.Signature, sr.Timestamp, v.Signature)
		}
		h := http.Header{}
		h.Set(HeaderTimestamp, v.Timestamp)
		h.Set(HeaderNonce, v.Nonce)
		h.Set(HeaderSignature, v.Signature)
		if _, _, _, err := verifyReport(key, v.OrderID, h, []byte(v.Body), time.Unix(sec, 0)); err != nil {
			t.Errorf("%s: verifier refuses the vector: %v", v.OrderID, err)
		}
		if _, _, _, err := verifyReport(key, v.OrderID+"x", h, []byte(v.Body), time.Unix(sec, 0)); err == nil {
			t.Errorf("%s: vector accepted for another order", v.OrderID)
		}
	}
}

// TestReportComesHome: an order's user-data carries its report endpoint;
// the agent's sender (the real python3) posts a report with it and the
// order turns hardened with the host keys; sending again is refused for
// good (409) without retrying; a cancelled order's report is refused too.
func TestReportComesHome(t *testing.T) {
	testtool.Require(t, "python3")
	e := newEnv(t)
	e.putBaseline()
	o := e.createOrder(orderBody(t, "home-1", sshKey(t), ""))
	if o.Report == nil {
		t.Fatal("order has no report endpoint")
	}
	a := machineFor(t, e, o)

	rep := reportBody(t, o, "hardened")
	queue(t, a, rep)
	d, err := a.Deliver(agent.Backoff{First: time.Millisecond, Max: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != agent.DeliverySent || d.Status != http.StatusOK || d.Attempts != 1 {
		t.Fatalf("delivery %+v", d)
	}
	var got OrderResponse
	e.op("GET", "/v1/orders/"+o.ID, nil).json(t, &got)
	var sent plan.Report
	if err := json.Unmarshal(rep, &sent); err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusHardened || len(got.HostKeys) == 0 || len(sent.HostKeys) == 0 || got.HostKeys[0].Fingerprint != sent.HostKeys[0].Fingerprint {
		t.Fatalf("order after the report: status %s, host keys %v (sent %v)", got.Status, got.HostKeys, sent.HostKeys)
	}

	// check's report after the late one: the order is final (409), no retry.
	queue(t, a, rep)
	d, err = a.Deliver(agent.Backoff{First: time.Millisecond, Max: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != agent.DeliveryRefused || d.Status != http.StatusConflict || d.Attempts != 1 {
		t.Fatalf("second delivery %+v", d)
	}

	// A cancelled order: refused for good (410).
	c := e.createOrder(orderBody(t, "home-2", sshKey(t), ""))
	ac := machineFor(t, e, c)
	want(t, e.op("DELETE", "/v1/orders/"+c.ID, nil), http.StatusOK)
	queue(t, ac, reportBody(t, c, "hardened"))
	d, err = ac.Deliver(agent.Backoff{First: time.Millisecond, Max: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != agent.DeliveryRefused || d.Status != http.StatusGone || d.Attempts != 1 {
		t.Fatalf("cancelled order's delivery %+v", d)
	}
}

// machineFor is an agent on a temp root whose endpoint file is the one
// in the order's user-data (what cloud-init's write_files puts there).
func machineFor(t *testing.T, e *env, o OrderResponse) *agent.Agent {
	t.Helper()
	r := e.op("GET", "/v1/orders/"+o.ID+"/user-data", nil)
	want(t, r, http.StatusOK)
	var ud struct {
		WriteFiles []struct {
			Path, Content, Owner, Permissions string
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(r.body, &ud); err != nil {
		t.Fatal(err)
	}
	a := &agent.Agent{Root: agent.Root{Dir: t.TempDir()}, Runner: agent.ExecRunner{Timeout: time.Minute}, Sleep: func(time.Duration) {}, Out: io.Discard, Err: io.Discard}
	found := false
	for _, f := range ud.WriteFiles {
		if f.Path != plan.ReportEndpointPath {
			continue
		}
		found = true
		if f.Permissions != "0600" || f.Owner != "root:root" {
			t.Fatalf("endpoint file %s %s: want root:root 0600", f.Owner, f.Permissions)
		}
		var ep struct{ URL, OrderID, Key string }
		if err := json.Unmarshal([]byte(f.Content), &ep); err != nil {
			t.Fatal(err)
		}
		if ep.URL != o.Report.URL || ep.Key != o.Report.Key {
			t.Fatalf("endpoint %+v, order's report %+v", ep, *o.Report)
		}
		if err := a.Root.WriteAtomic(f.Path, []byte(f.Content), 0o600, ""); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("user-data has no %s", plan.ReportEndpointPath)
	}
	return a
}

func queue(t *testing.T, a *agent.Agent, report []byte) {
	t.Helper()
	if err := a.Root.WriteAtomic(plan.OutboxPath, report, 0o600, ""); err != nil {
		t.Fatal(err)
	}
}
