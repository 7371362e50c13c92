//go:build cgo && libsqlite3

package service

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"hardbake.dev/hardbake/config"
)

func TestProfiles(t *testing.T) {
	e := newEnv(t)
	doc := baselineDoc(t)
	r := e.op("PUT", "/v1/profiles/baseline", doc)
	want(t, r, http.StatusCreated)
	var p ProfileResponse
	r.json(t, &p)
	if p.Name != "baseline" || p.Revision != 1 || r.header.Get("Location") != "/v1/profiles/baseline?revision=1" {
		t.Fatalf("first PUT: %+v, Location %q", p, r.header.Get("Location"))
	}
	// The same document again is the same revision.
	r = e.op("PUT", "/v1/profiles/baseline", doc)
	want(t, r, http.StatusOK)
	r.json(t, &p)
	if p.Revision != 1 {
		t.Fatalf("same document made revision %d", p.Revision)
	}
	// A changed document is revision 2; revision 1 stays readable.
	doc2 := append(append([]byte(nil), doc...), []byte("\n# revised\n")...)
	r = e.op("PUT", "/v1/profiles/baseline", doc2)
	want(t, r, http.StatusCreated)
	r.json(t, &p)
	if p.Revision != 2 {
		t.Fatalf("changed document: revision %d, want 2", p.Revision)
	}
	r = e.op("GET", "/v1/profiles/baseline", nil)
	want(t, r, http.StatusOK)
	r.json(t, &p)
	if p.Revision != 2 || p.Document != string(doc2) {
		t.Fatalf("latest: revision %d, document matches %v", p.Revision, p.Document == string(doc2))
	}
	r = e.op("GET", "/v1/profiles/baseline?revision=1", nil)
	want(t, r, http.StatusOK)
	r.json(t, &p)
	if p.Revision != 1 || p.Document != string(doc) {
		t.Fatalf("revision 1: got revision %d", p.Revision)
	}
	want(t, e.op("GET", "/v1/profiles/baseline?revision=3", nil), http.StatusNotFound)
	want(t, e.op("GET", "/v1/profiles/nothing", nil), http.StatusNotFound)
	want(t, e.op("GET", "/v1/profiles/baseline?revision=x", nil), http.StatusBadRequest)
	want(t, e.op("PUT", "/v1/profiles/Bad_Name", doc), http.StatusBadRequest)

	r = e.op("GET", "/v1/profiles", nil)
	want(t, r, http.StatusOK)
	var list struct{ Profiles []ProfileResponse }
	r.json(t, &list)
	if len(list.Profiles) != 1 || list.Profiles[0].Revision != 2 || list.Profiles[0].Document != "" {
		t.Fatalf("list: %+v", list.Profiles)
	}
}

func TestProfileDiagnostics(t *testing.T) {
	e := newEnv(t)
	doc := strings.Replace(string(baselineDoc(t)), "metadata:", "bogus_key: 1\nmetadata:", 1)
	r := e.op("PUT", "/v1/profiles/baseline", []byte(doc))
	want(t, r, http.StatusUnprocessableEntity)
	eb := r.errBody(t)
	line := strings.Count(doc[:strings.Index(doc, "bogus_key")], "\n") + 1
	if len(eb.Diagnostics) != 1 {
		t.Fatalf("diagnostics: %+v", eb.Diagnostics)
	}
	d := eb.Diagnostics[0]
	if d.Path != "bogus_key" || d.Line != line || d.Column != 1 || d.File != "profiles/baseline" || d.Severity != "error" || d.Code == "" || !strings.Contains(d.Message, "unknown key") {
		t.Fatalf("diagnostic %+v, want bogus_key at line %d column 1", d, line)
	}
	// The name in the document must be the name in the URL.
	want(t, e.op("PUT", "/v1/profiles/other", baselineDoc(t)), http.StatusUnprocessableEntity)
	// Nothing was stored.
	want(t, e.op("GET", "/v1/profiles/baseline", nil), http.StatusNotFound)
	// A body over the limit is 413.
	big := append(baselineDoc(t), bytes.Repeat([]byte("# padding\n"), MaxProfileBytes/10+1)...)
	want(t, e.op("PUT", "/v1/profiles/baseline", big), http.StatusRequestEntityTooLarge)
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v1/profiles", "/v1/orders", "/metrics"} {
		r := e.do("GET", path, "", nil, nil)
		want(t, r, http.StatusUnauthorized)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate", path)
		}
		want(t, e.do("GET", path, "wrong-token-wrong-token", nil, nil), http.StatusUnauthorized)
		want(t, e.do("GET", path, testToken[:len(testToken)-1], nil, nil), http.StatusUnauthorized)
		want(t, e.do("GET", path, "", nil, http.Header{"Authorization": {"Basic " + testToken}}), http.StatusUnauthorized)
		want(t, e.op("GET", path, nil), http.StatusOK)
	}
	// /healthz needs no token.
	r := e.do("GET", "/healthz", "", nil, nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"role": "leader"`) {
		t.Errorf("healthz: %s", r.body)
	}
	want(t, e.do("GET", "/nowhere", "", nil, nil), http.StatusNotFound)
	want(t, e.op("PATCH", "/v1/orders", nil), http.StatusNotFound)
}

func TestOrderLifecycle(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	body := orderBody(t, "shop-0001", key, "")
	o := e.createOrder(body)
	if o.Status != StatusCreated || o.Profile != "baseline" || o.ProfileRevision != 1 || len(o.ID) != 32 || o.Agent.Kind != "seed" || o.Agent.Arch != "amd64" {
		t.Fatalf("created order: %+v", o)
	}
	tok := e.secrets.Token(o.ID)
	wantURL := e.http.URL + "/nocloud/" + tok + "/"
	if o.NoCloud == nil || o.NoCloud.URL != wantURL || o.NoCloud.KernelArg != "ds=nocloud-net;s="+wantURL ||
		o.NoCloud.SMBIOSSerial != o.NoCloud.KernelArg || o.NoCloud.KernelArgGRUB != `ds=nocloud-net\;s=`+wantURL ||
		o.NoCloud.QEMUSMBIOS != "type=1,serial=ds=nocloud-net;s="+wantURL {
		t.Fatalf("nocloud strings: %+v", o.NoCloud)
	}
	if o.Report == nil || o.Report.Key != hex.EncodeToString(e.secrets.ReportKey(o.ID)) || o.Report.URL != e.http.URL+"/report/"+o.ID {
		t.Fatalf("report target: %+v", o.Report)
	}

	// Idempotent: the same body is the same order (200), even reformatted.
	r := e.op("POST", "/v1/orders", body)
	want(t, r, http.StatusOK)
	var again OrderResponse
	r.json(t, &again)
	if again.ID != o.ID || again.NoCloud.URL != o.NoCloud.URL {
		t.Fatalf("retry gave order %s (url %s), want %s", again.ID, again.NoCloud.URL, o.ID)
	}
	var cb bytes.Buffer
	if err := json.Compact(&cb, body); err != nil {
		t.Fatal(err)
	}
	compact := bytes.ReplaceAll(cb.Bytes(), []byte(`"ssh_keys":[`), []byte(`"agent":"seed","ssh_keys":[`))
	want(t, e.op("POST", "/v1/orders", compact), http.StatusOK)
	// The same client_order_id with another body is a conflict.
	r = e.op("POST", "/v1/orders", orderBody(t, "shop-0001", key, `, "ssh_port": 50022`))
	want(t, r, http.StatusConflict)

	// The operator's files.
	ud := e.op("GET", "/v1/orders/"+o.ID+"/user-data", nil)
	want(t, ud, http.StatusOK)
	if !bytes.HasPrefix(ud.body, []byte("#cloud-config")) {
		t.Fatalf("user-data: %.40q", ud.body)
	}
	md := e.op("GET", "/v1/orders/"+o.ID+"/meta-data", nil)
	want(t, md, http.StatusOK)
	if !strings.Contains(string(md.body), o.InstanceID) {
		t.Fatalf("meta-data %q lacks instance-id %s", md.body, o.InstanceID)
	}
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/network-config", nil), http.StatusNotFound)
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/passwd", nil), http.StatusNotFound)
	iso := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
	want(t, iso, http.StatusOK)
	if len(iso.body) < 32*1024 || string(iso.body[0x8001:0x8006]) != "CD001" {
		t.Fatalf("seed.iso: %d bytes, no ISO9660 signature", len(iso.body))
	}

	// NoCloud-Net, as cloud-init 22.4 fetches it.
	nc := "/nocloud/" + tok + "/"
	r = e.do("GET", nc+"meta-data", "", nil, nil)
	want(t, r, http.StatusOK)
	if !bytes.Equal(r.body, md.body) {
		t.Fatal("NoCloud meta-data differs from the order's")
	}
	r = e.do("GET", nc+"user-data", "", nil, nil)
	want(t, r, http.StatusOK)
	if !bytes.Equal(r.body, ud.body) {
		t.Fatal("NoCloud user-data differs from the order's")
	}
	r = e.do("GET", nc+"vendor-data", "", nil, nil)
	want(t, r, http.StatusOK)
	if len(r.body) != 0 {
		t.Fatalf("vendor-data: %q, want empty", r.body)
	}
	want(t, e.do("GET", nc+"network-config", "", nil, nil), http.StatusNotFound)
	want(t, e.do("GET", nc+"passwd", "", nil, nil), http.StatusNotFound)
	want(t, e.do("GET", "/nocloud/"+strings.Repeat("A", 43)+"/meta-data", "", nil, nil), http.StatusNotFound)
	want(t, e.do("GET", "/nocloud/short/meta-data", "", nil, nil), http.StatusNotFound)

	r = e.op("GET", "/v1/orders/"+o.ID, nil)
	want(t, r, http.StatusOK)
	var got OrderResponse
	r.json(t, &got)
	if got.Status != StatusFetched || got.FetchedAt == nil {
		t.Fatalf("after the fetch: status %s, fetched_at %v", got.Status, got.FetchedAt)
	}
	firstFetch := *got.FetchedAt

	// The signed report makes it hardened, with the host keys.
	rep := reportBody(t, o, "hardened")
	keyBytes, _ := hex.DecodeString(o.Report.Key)
	nonce := nextNonce()
	r = e.postReport(o.ID, keyBytes, rep, nonce, e.clock.Now())
	want(t, r, http.StatusOK)
	r = e.op("GET", "/v1/orders/"+o.ID, nil)
	r.json(t, &got)
	if got.Status != StatusHardened || got.ReportedAt == nil || len(got.HostKeys) != 1 || got.HostKeys[0].Fingerprint != "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" {
		t.Fatalf("after the report: %+v", got)
	}
	if !got.FetchedAt.Equal(firstFetch) {
		t.Fatalf("fetched_at moved from %v to %v", firstFetch, got.FetchedAt)
	}
	// The same request again is a replay.
	r = e.postReport(o.ID, keyBytes, rep, nonce, e.clock.Now())
	want(t, r, http.StatusConflict)
	// A fresh one for a final order is refused too.
	want(t, e.postReport(o.ID, keyBytes, reportBody(t, o, "failed"), nextNonce(), e.clock.Now()), http.StatusConflict)

	// Cancelling revokes the URLs (the status of a final order stays).
	r = e.op("DELETE", "/v1/orders/"+o.ID, nil)
	want(t, r, http.StatusOK)
	got = OrderResponse{}
	r.json(t, &got)
	if got.NoCloud != nil || got.Report != nil || got.Status != StatusHardened {
		t.Fatalf("cancelled final order: %+v", got)
	}
	want(t, e.do("GET", nc+"user-data", "", nil, nil), http.StatusGone)
	want(t, e.do("GET", nc+"vendor-data", "", nil, nil), http.StatusGone)
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil), http.StatusGone)
	want(t, e.op("GET", "/v1/orders/"+o.ID+"/user-data", nil), http.StatusGone)
	want(t, e.op("DELETE", "/v1/orders/"+o.ID, nil), http.StatusOK) // twice: nothing changes
	want(t, e.op("DELETE", "/v1/orders/"+strings.Repeat("0", 32), nil), http.StatusNotFound)
	want(t, e.op("GET", "/v1/orders/"+strings.Repeat("0", 32), nil), http.StatusNotFound)
	want(t, e.op("GET", "/v1/orders/not-an-id", nil), http.StatusNotFound)
}

func TestCancelOpenOrder(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	o := e.createOrder(orderBody(t, "c-1", sshKey(t), ""))
	r := e.op("DELETE", "/v1/orders/"+o.ID, nil)
	want(t, r, http.StatusOK)
	var got OrderResponse
	r.json(t, &got)
	if got.Status != StatusCancelled {
		t.Fatalf("status %s, want cancelled", got.Status)
	}
	tok := e.secrets.Token(o.ID)
	for _, f := range []string{"meta-data", "user-data", "vendor-data", "network-config"} {
		r := e.do("GET", "/nocloud/"+tok+"/"+f, "", nil, nil)
		want(t, r, http.StatusGone)
		if bytes.Contains(r.body, []byte("cloud-config")) {
			t.Fatalf("%s served after cancel", f)
		}
	}
	key, _ := hex.DecodeString(o.Report.Key)
	want(t, e.postReport(o.ID, key, reportBody(t, o, "hardened"), nextNonce(), e.clock.Now()), http.StatusGone)
	r = e.op("GET", "/v1/orders/"+o.ID, nil)
	r.json(t, &got)
	if got.Status != StatusCancelled || got.ReportedAt != nil {
		t.Fatalf("a report changed a cancelled order: %+v", got)
	}
}

func TestOrderValidation(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		path   string
		line   int
		column int
	}{
		{"bad key", "{\n  \"client_order_id\": \"v-1\",\n  \"profile\": \"baseline\",\n  \"hostname\": \"web-1\",\n  \"ssh_keys\": [\"ssh-ed25519 AAAA\"]\n}", 422, "invalid-ssh-key", "ssh_keys[0]", 5, 16},
		{"bad hostname", "{\"client_order_id\":\"v-2\",\"profile\":\"baseline\",\"hostname\":\"-x-\",\"ssh_keys\":[\"" + key + "\"]}", 422, "invalid-hostname", "hostname", 1, 58},
		{"no hostname", "{\"client_order_id\":\"v-3\",\"profile\":\"baseline\",\"ssh_keys\":[\"" + key + "\"]}", 422, "required", "hostname", 1, 1},
		{"bad port", "{\"client_order_id\":\"v-4\",\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"],\"ssh_port\":70000}", 422, "invalid-port", "ssh_port", 0, 0},
		{"bad allow", "{\"client_order_id\":\"v-5\",\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"],\"allow\":[\"80/sctp\"]}", 422, "invalid-service", "allow[0]", 0, 0},
		{"unknown profile", "{\"client_order_id\":\"v-6\",\"profile\":\"nope\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "not-found", "profile", 0, 0},
		{"unknown revision", "{\"client_order_id\":\"v-7\",\"profile\":\"baseline@9\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "not-found", "profile", 0, 0},
		{"bad agent", "{\"client_order_id\":\"v-8\",\"profile\":\"baseline\",\"agent\":\"ftp\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "invalid-choice", "agent", 0, 0},
		{"bad arch", "{\"client_order_id\":\"v-9\",\"profile\":\"baseline\",\"arch\":\"mips\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "invalid-choice", "arch", 0, 0},
		{"no client id", "{\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "required", "client_order_id", 0, 0},
		{"bad client id", "{\"client_order_id\":\"-v\",\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "invalid-client-order-id", "client_order_id", 0, 0},
		{"bad profile ref", "{\"client_order_id\":\"v-14\",\"profile\":\"baseline@x\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"]}", 422, "invalid-profile-ref", "profile", 0, 0},
		{"unknown field", "{\"client_order_id\":\"v-10\",\n\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":[\"" + key + "\"],\"colour\":\"red\"}", 400, "unknown-field", "colour", 0, 0},
		{"wrong type", "{\"client_order_id\":\"v-11\",\"profile\":\"baseline\",\"hostname\":\"web\",\"ssh_keys\":\"" + key + "\"}", 400, "type", "ssh_keys", 0, 0},
		{"syntax", "{\"client_order_id\":\"v-12\",", 400, "syntax", "", 0, 0},
		{"two values", "{\"client_order_id\":\"v-13\"} {}", 400, "syntax", "", 0, 0},
		{"empty", "", 400, "syntax", "", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.op("POST", "/v1/orders", []byte(c.body))
			want(t, r, c.status)
			eb := r.errBody(t)
			if len(eb.Diagnostics) == 0 {
				t.Fatalf("no diagnostics: %s", r.body)
			}
			var found *Diagnostic
			for i, d := range eb.Diagnostics {
				if d.Path == c.path {
					found = &eb.Diagnostics[i]
				}
			}
			if found == nil {
				t.Fatalf("no diagnostic for %q: %+v", c.path, eb.Diagnostics)
			}
			if found.Code != c.code {
				t.Errorf("%s: code %q, want %q", c.path, found.Code, c.code)
			}
			if found.Code == "" || found.Severity != "error" || found.Message == "" || found.File != "request" || found.Line < 1 {
				t.Fatalf("incomplete diagnostic: %+v", found)
			}
			if c.line > 0 && (found.Line != c.line || found.Column != c.column) {
				t.Fatalf("%s at %d:%d, want %d:%d (%s)", c.path, found.Line, found.Column, c.line, c.column, found)
			}
		})
	}
	// None of them stored anything.
	r := e.op("GET", "/v1/orders", nil)
	var list struct{ Orders []OrderResponse }
	r.json(t, &list)
	if len(list.Orders) != 0 {
		t.Fatalf("%d orders stored by invalid requests", len(list.Orders))
	}
	big := orderBody(t, "big", key, `, "allow": [`+strings.Repeat(`"443/tcp",`, MaxOrderBytes/10)+`"80"]`)
	want(t, e.op("POST", "/v1/orders", big), http.StatusRequestEntityTooLarge)
}

func TestOrderList(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.createOrder(orderBody(t, fmt.Sprintf("list-%d", i), key, fmt.Sprintf(`, "instance_id": "i-%d"`, i))).ID)
	}
	want(t, e.op("DELETE", "/v1/orders/"+ids[1], nil), http.StatusOK)
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := e.op("GET", "/v1/orders?limit=2&cursor="+cursor, nil)
		want(t, r, http.StatusOK)
		var page struct {
			Orders     []OrderResponse
			NextCursor string `json:"next_cursor"`
		}
		r.json(t, &page)
		for _, o := range page.Orders {
			seen = append(seen, o.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d orders, want 5", len(seen))
	}
	for i := range seen { // newest first
		if seen[i] != ids[4-i] {
			t.Fatalf("order %d is %s, want %s", i, seen[i], ids[4-i])
		}
	}
	r := e.op("GET", "/v1/orders?status=cancelled", nil)
	var page struct{ Orders []OrderResponse }
	r.json(t, &page)
	if len(page.Orders) != 1 || page.Orders[0].ID != ids[1] || page.Orders[0].NoCloud != nil {
		t.Fatalf("status filter: %+v", page.Orders)
	}
	r = e.op("GET", "/v1/orders?status=created", nil)
	r.json(t, &page)
	if len(page.Orders) != 4 {
		t.Fatalf("created: %d orders", len(page.Orders))
	}
	for _, q := range []string{"status=bogus", "limit=0", "limit=501", "limit=x", "cursor=zzz", "sort=asc"} {
		want(t, e.op("GET", "/v1/orders?"+q, nil), http.StatusBadRequest)
	}
}

func TestReportRefusals(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	a := e.createOrder(orderBody(t, "r-a", key, `, "instance_id": "i-a"`))
	b := e.createOrder(orderBody(t, "r-b", key, `, "instance_id": "i-b"`))
	keyA, _ := hex.DecodeString(a.Report.Key)
	keyB, _ := hex.DecodeString(b.Report.Key)
	now := e.clock.Now()
	repA := reportBody(t, a, "hardened")

	// A's report, A's key, posted for B: the id is signed, so it fails.
	sr, _ := SignReport(keyA, a.ID, now, nextNonce(), repA)
	want(t, e.do("POST", "/report/"+b.ID, "", sr.Body, sr.Header()), http.StatusForbidden)
	// Signed with B's key for A.
	want(t, e.postReport(a.ID, keyB, repA, nextNonce(), now), http.StatusForbidden)
	// A's report for B with B's key: signature fine, content is A's.
	want(t, e.postReport(b.ID, keyB, repA, nextNonce(), now), http.StatusUnprocessableEntity)
	// Tampered body.
	sr, _ = SignReport(keyA, a.ID, now, nextNonce(), repA)
	tampered := bytes.Replace(sr.Body, []byte("hardened"), []byte("failed\x20\x20"), 1)
	want(t, e.do("POST", "/report/"+a.ID, "", tampered, sr.Header()), http.StatusForbidden)
	// Too old, too far in the future.
	want(t, e.postReport(a.ID, keyA, repA, nextNonce(), now.Add(-ReportWindow-time.Minute)), http.StatusForbidden)
	want(t, e.postReport(a.ID, keyA, repA, nextNonce(), now.Add(ReportWindow+time.Minute)), http.StatusForbidden)
	// Missing or malformed headers.
	want(t, e.do("POST", "/report/"+a.ID, "", repA, nil), http.StatusBadRequest)
	h := sr.Header()
	h.Set(HeaderSignature, "v2=00")
	want(t, e.do("POST", "/report/"+a.ID, "", repA, h), http.StatusBadRequest)
	// Not a final result; not JSON; too big.
	want(t, e.postReport(a.ID, keyA, reportBody(t, a, "pending"), nextNonce(), now), http.StatusUnprocessableEntity)
	want(t, e.postReport(a.ID, keyA, []byte(`{"result":"hardened","extra":1}`), nextNonce(), now), http.StatusBadRequest)
	big := append(repA[:len(repA)-1:len(repA)-1], []byte(`,"steps":[`+strings.Repeat(`{"name":"x"},`, MaxReportBytes/12)+`{}]}`)...)
	want(t, e.postReport(a.ID, keyA, big, nextNonce(), now), http.StatusRequestEntityTooLarge)
	// Unknown order.
	want(t, e.postReport(strings.Repeat("0", 32), keyA, repA, nextNonce(), now), http.StatusForbidden)
	want(t, e.postReport("not-an-order", keyA, repA, nextNonce(), now), http.StatusNotFound)

	// Nothing changed.
	for _, o := range []OrderResponse{a, b} {
		var got OrderResponse
		e.op("GET", "/v1/orders/"+o.ID, nil).json(t, &got)
		if got.Status != StatusCreated || got.ReportedAt != nil {
			t.Fatalf("order %s changed by refused reports: %+v", o.ID, got)
		}
	}
	// And the real one goes through: created -> partial directly (a
	// seed.iso boot never fetches over NoCloud-Net).
	want(t, e.postReport(a.ID, keyA, reportBody(t, a, "partial"), nextNonce(), now), http.StatusOK)
	var got OrderResponse
	e.op("GET", "/v1/orders/"+a.ID, nil).json(t, &got)
	if got.Status != StatusPartial {
		t.Fatalf("status %s, want partial", got.Status)
	}
}

func TestReportRateLimit(t *testing.T) {
	e := newEnvLimit(t, DefaultReportLimit)
	e.putBaseline()
	o := e.createOrder(orderBody(t, "rl", sshKey(t), ""))
	codes := map[int]int{}
	for range DefaultReportLimit.Burst + 3 {
		// Wrong key: each is refused, and still counts.
		r := e.postReport(o.ID, make([]byte, ReportKeySize), []byte("{}"), nextNonce(), e.clock.Now())
		codes[r.status]++
	}
	if codes[http.StatusForbidden] != DefaultReportLimit.Burst || codes[http.StatusTooManyRequests] != 3 {
		t.Fatalf("codes %v: want %d×403 then 3×429", codes, DefaultReportLimit.Burst)
	}
	// Time refills the bucket.
	e.clock.Add(DefaultReportLimit.Every)
	key, _ := hex.DecodeString(o.Report.Key)
	want(t, e.postReport(o.ID, key, reportBody(t, o, "hardened"), nextNonce(), e.clock.Now()), http.StatusOK)
}

func TestDeadlineSweep(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	stale := e.createOrder(orderBody(t, "s-1", key, `, "instance_id": "i-s1"`))
	done := e.createOrder(orderBody(t, "s-2", key, `, "instance_id": "i-s2"`))
	k, _ := hex.DecodeString(done.Report.Key)
	want(t, e.postReport(done.ID, k, reportBody(t, done, "hardened"), nextNonce(), e.clock.Now()), http.StatusOK)
	if n, err := e.srv.Sweep(t.Context()); err != nil || n != 0 {
		t.Fatalf("early sweep: %d, %v", n, err)
	}
	e.clock.Add(31 * time.Minute)
	if n, err := e.srv.Sweep(t.Context()); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1", n, err)
	}
	var got OrderResponse
	e.op("GET", "/v1/orders/"+stale.ID, nil).json(t, &got)
	if got.Status != StatusTimedOut {
		t.Fatalf("stale order: %s", got.Status)
	}
	e.op("GET", "/v1/orders/"+done.ID, nil).json(t, &got)
	if got.Status != StatusHardened {
		t.Fatalf("reported order: %s", got.Status)
	}
}

func TestAgentURL(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	o := e.createOrder(orderBody(t, "u-1", sshKey(t), `, "agent": "url", "arch": "arm64"`))
	if o.Agent.Kind != "url" || o.Agent.URL == "" {
		t.Fatalf("agent: %+v", o.Agent)
	}
	path := strings.TrimPrefix(o.Agent.URL, e.http.URL)
	r := e.do("GET", path, "", nil, nil)
	want(t, r, http.StatusOK)
	bin, _ := e.agents.forArch("arm64")
	if !bytes.Equal(r.body, bin) {
		t.Fatal("served agent differs")
	}
	ud := e.op("GET", "/v1/orders/"+o.ID+"/user-data", nil)
	if !bytes.Contains(ud.body, []byte(o.Agent.URL)) || !bytes.Contains(ud.body, []byte(o.Agent.SHA256)) {
		t.Fatal("user-data does not name the agent URL and its sha256")
	}
	want(t, e.do("GET", strings.Replace(path, "arm64", "amd64", 1), "", nil, nil), http.StatusNotFound)
	want(t, e.do("GET", "/agent/"+strings.Repeat("0", 64)+"/hardbake-firstboot-linux-arm64", "", nil, nil), http.StatusNotFound)
	// seed.iso of a url order carries no agent: small.
	iso := e.op("GET", "/v1/orders/"+o.ID+"/seed.iso", nil)
	want(t, iso, http.StatusOK)
	if bytes.Contains(iso.body, bin[:64]) {
		t.Fatal("agent on the seed of an agent: url order")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	e.createOrder(orderBody(t, "m-1", key, `, "instance_id": "i-m1"`))
	o := e.createOrder(orderBody(t, "m-2", key, `, "instance_id": "i-m2"`))
	e.op("DELETE", "/v1/orders/"+o.ID, nil)
	e.do("GET", "/nocloud/"+e.secrets.Token(o.ID)+"/meta-data", "", nil, nil)
	r := e.op("GET", "/metrics", nil)
	want(t, r, http.StatusOK)
	text := string(r.body)
	for _, line := range []string{
		`hardbaked_orders{status="created"} 1`,
		`hardbaked_orders{status="cancelled"} 1`,
		`hardbaked_orders{status="hardened"} 0`,
		`hardbaked_dqlite_role{role="leader"} 1`,
		`hardbaked_dqlite_role{role="voter"} 0`,
		`hardbaked_http_requests_total{route="POST /v1/orders",code="201"} 2`,
		`hardbaked_http_request_duration_seconds_count{route="POST /v1/orders"} 2`,
		`hardbaked_http_request_duration_seconds_bucket{route="POST /v1/orders",le="+Inf"} 2`,
		`hardbaked_http_requests_total{route="GET /nocloud/{token}/{file}",code="410"} 1`,
		"# TYPE hardbaked_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	if strings.Contains(text, e.secrets.Token(o.ID)) {
		t.Error("a token reached the metrics")
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestRestart: everything acknowledged survives a stop and a restart on
// the same directory, and the secrets still open the same orders.
func TestRestart(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	var orders []OrderResponse
	for i := range 20 {
		orders = append(orders, e.createOrder(orderBody(t, fmt.Sprintf("rs-%d", i), key, fmt.Sprintf(`, "instance_id": "i-rs%d"`, i))))
	}
	e.do("GET", "/nocloud/"+e.secrets.Token(orders[0].ID)+"/meta-data", "", nil, nil)
	k, _ := hex.DecodeString(orders[1].Report.Key)
	want(t, e.postReport(orders[1].ID, k, reportBody(t, orders[1], "hardened"), nextNonce(), e.clock.Now()), http.StatusOK)
	want(t, e.op("DELETE", "/v1/orders/"+orders[2].ID, nil), http.StatusOK)

	e.restart()

	wantStatus := map[int]string{0: StatusFetched, 1: StatusHardened, 2: StatusCancelled}
	for i, o := range orders {
		r := e.op("GET", "/v1/orders/"+o.ID, nil)
		want(t, r, http.StatusOK)
		var got OrderResponse
		r.json(t, &got)
		ws := wantStatus[i]
		if ws == "" {
			ws = StatusCreated
		}
		if got.Status != ws || got.PlanDigest != o.PlanDigest || got.InstanceID != o.InstanceID {
			t.Fatalf("order %d after restart: %+v", i, got)
		}
	}
	// The retry of an acknowledged order is still the same order.
	r := e.op("POST", "/v1/orders", orderBody(t, "rs-5", key, `, "instance_id": "i-rs5"`))
	want(t, r, http.StatusOK)
	want(t, e.do("GET", "/nocloud/"+e.secrets.Token(orders[3].ID)+"/user-data", "", nil, nil), http.StatusOK)
	want(t, e.op("GET", "/v1/profiles/baseline?revision=1", nil), http.StatusOK)
}

// TestConcurrentOrders: retries racing each other make one order, and
// concurrent distinct orders (sharing one cached profile) all succeed.
func TestConcurrentOrders(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	type result struct {
		status int
		id     string
	}
	results := make(chan result, 16)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			body := orderBody(t, "same", key, "")
			if i%2 == 1 {
				body = orderBody(t, fmt.Sprintf("distinct-%d", i), key, fmt.Sprintf(`, "instance_id": "c-%d"`, i))
			}
			res, err := e.send("POST", "/v1/orders", body)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var o OrderResponse
			if err := json.NewDecoder(res.Body).Decode(&o); err != nil {
				t.Error(err)
			}
			if i%2 == 0 {
				results <- result{res.StatusCode, o.ID}
			} else if res.StatusCode != http.StatusCreated {
				t.Errorf("distinct order %d: %d", i, res.StatusCode)
			}
		})
	}
	wg.Wait()
	close(results)
	created, ids := 0, map[string]bool{}
	for r := range results {
		if r.status == http.StatusCreated {
			created++
		} else if r.status != http.StatusOK {
			t.Errorf("retry: status %d", r.status)
		}
		ids[r.id] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Fatalf("%d created, %d distinct ids for one client_order_id", created, len(ids))
	}
	var page struct{ Orders []OrderResponse }
	e.op("GET", "/v1/orders", nil).json(t, &page)
	if len(page.Orders) != 9 {
		t.Fatalf("%d orders stored, want 9", len(page.Orders))
	}
}

// TestOrderLatestRevisionElsewhere: "the latest revision" of a profile can
// change on another node of a cluster (here: written to the store behind
// the service's back). An order is always made from, and judged by, the
// revision that is the latest when it is stored, whatever this node saw
// before: refusals and successes alike.
func TestOrderLatestRevisionElsewhere(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	if o := e.createOrder(orderBody(t, "el-1", key, "")); o.ProfileRevision != 1 {
		t.Fatalf("revision %d, want 1", o.ProfileRevision)
	}
	nopasswd := baselineDoc(t)
	passwd := bytes.Replace(nopasswd, []byte("sudo: nopasswd"), []byte("sudo: password"), 1)
	if bytes.Equal(passwd, nopasswd) {
		t.Fatal("the baseline profile has no sudo: nopasswd to change")
	}
	elsewhere := func(doc []byte, rev int64) {
		t.Helper()
		p, created, err := e.store.PutProfile(context.Background(), "baseline", "application/yaml", doc)
		if err != nil || !created || p.Revision != rev {
			t.Fatalf("put revision %d elsewhere: %+v %v %v", rev, p, created, err)
		}
	}
	hash := `, "admin_password_hash": "$6$saltsalt$abcdefghijklmnopqrstuv"`
	check := func(cid, extra string, status, rev int, code string) {
		t.Helper()
		r := e.op("POST", "/v1/orders", orderBody(t, cid, key, extra))
		want(t, r, status)
		if status == http.StatusCreated {
			var o OrderResponse
			r.json(t, &o)
			if o.ProfileRevision != rev {
				t.Fatalf("%s: revision %d, want %d", cid, o.ProfileRevision, rev)
			}
			return
		}
		if d := r.errBody(t).Diagnostics; len(d) != 1 || d[0].Code != code {
			t.Fatalf("%s: diagnostics %+v, want one %s", cid, d, code)
		}
	}
	// Revision 2 wants a password hash: valid under 1, refused under 2.
	elsewhere(passwd, 2)
	check("el-2", "", http.StatusUnprocessableEntity, 0, string(config.CodeRequired))
	check("el-3", hash, http.StatusCreated, 2, "")
	// Revision 3 refuses one.
	elsewhere(nopasswd, 3)
	check("el-4", hash, http.StatusUnprocessableEntity, 0, string(config.CodeIgnoredField))
	check("el-5", "", http.StatusCreated, 3, "")
	// A retry of an order made from an older revision is still that order.
	r := e.op("POST", "/v1/orders", orderBody(t, "el-1", key, ""))
	want(t, r, http.StatusOK)
	var o OrderResponse
	if r.json(t, &o); o.ProfileRevision != 1 {
		t.Fatalf("retry: revision %d, want 1", o.ProfileRevision)
	}
	// Refused under the revision this node saw last (3), valid under 4.
	elsewhere(passwd, 4)
	check("el-6", hash, http.StatusCreated, 4, "")
}

// TestOrderRetryAfterRefusingRevision: a client whose POST timed out asks
// again after the profile gained a revision that refuses its request. Its
// order exists, so the retry gets it (200), not the new revision's 422;
// another body under that client_order_id is still 409, and a new
// client_order_id with the same fields gets the 422.
func TestOrderRetryAfterRefusingRevision(t *testing.T) {
	e := newEnv(t)
	e.putBaseline()
	key := sshKey(t)
	first := e.createOrder(orderBody(t, "rr-1", key, ""))
	passwd := bytes.Replace(baselineDoc(t), []byte("sudo: nopasswd"), []byte("sudo: password"), 1)
	want(t, e.op("PUT", "/v1/profiles/baseline", passwd), http.StatusCreated)

	r := e.op("POST", "/v1/orders", orderBody(t, "rr-1", key, ""))
	want(t, r, http.StatusOK)
	var again OrderResponse
	if r.json(t, &again); again.ID != first.ID || again.ProfileRevision != 1 || again.NoCloud == nil || again.NoCloud.URL != first.NoCloud.URL {
		t.Fatalf("retry: order %s revision %d, want %s revision 1 with its URL", again.ID, again.ProfileRevision, first.ID)
	}
	if loc := r.header.Get("Location"); loc != "/v1/orders/"+first.ID {
		t.Fatalf("retry: Location %q", loc)
	}
	want(t, e.op("POST", "/v1/orders", orderBody(t, "rr-1", key, `, "ssh_port": 50022`)), http.StatusConflict)
	r = e.op("POST", "/v1/orders", orderBody(t, "rr-2", key, ""))
	want(t, r, http.StatusUnprocessableEntity)
	if d := r.errBody(t).Diagnostics; len(d) != 1 || d[0].Code != string(config.CodeRequired) {
		t.Fatalf("new order under revision 2: diagnostics %+v, want one required", d)
	}
}
