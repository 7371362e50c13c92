package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"hardbake.dev/hardbake/plan"
)

const seedOrder = `{"client_order_id":"shop-1","profile":"baseline@2","agent":"url","arch":"arm64","network_config":true,
"hostname":"web-1.example.com","instance_id":"vps-1","admin_user":"ops","ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz ops"],
"ssh_port":50022,"allow":["80/tcp","443"],"edge_target":{"ip":"203.0.113.10","hetzner_server_id":4711,"ovh_vps":"vps-1.vps.ovh.net"}}`

// FuzzDecodeOrderRequest: the order decoder never panics, reports every
// refusal as diagnostics with a position inside the body, and what it
// accepts survives a round trip through its canonical form unchanged.
func FuzzDecodeOrderRequest(f *testing.F) {
	for _, s := range []string{seedOrder, `{}`, ``, `[]`, `{"hostname":1}`, `{"x":1}`, `{} {}`, `{"ssh_keys":[null]}`, "{\n\"allow\": [\"1\",}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, diags := DecodeOrderRequest(body)
		if diags != nil {
			if req != nil {
				t.Fatal("both a request and diagnostics")
			}
			lines := bytes.Count(body, []byte("\n")) + 1
			for _, d := range diags {
				if d.Line < 1 || d.Line > lines || d.Column < 1 || d.Message == "" || d.Code == "" {
					t.Fatalf("diagnostic %+v outside a %d-line body", d, lines)
				}
			}
			return
		}
		canon, hash := req.canonical()
		again, d2 := DecodeOrderRequest(canon)
		if d2 != nil {
			t.Fatalf("canonical form %s refused: %+v", canon, d2)
		}
		canon2, hash2 := again.canonical()
		if hash != hash2 || !bytes.Equal(canon, canon2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", canon, canon2)
		}
	})
}

// FuzzEdgeTarget: a PUT …/edge/target body is decoded strictly and
// checked without a panic; diagnostics point into the body; an accepted
// target is canonical (checking it again changes nothing) and names
// something.
func FuzzEdgeTarget(f *testing.F) {
	for _, s := range []string{`{"ip":"203.0.113.10","hetzner_server_id":4711,"ovh_vps":"vps-1.vps.ovh.net"}`, `{}`, `{"ip":"::1"}`,
		`{"ip":"203.000.113.10"}`, `{"hetzner_server_id":-3}`, `{"ovh_vps":"a/b"}`, `{"ip":5}`, `{"region":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var tg EdgeTarget
		if d := decodeStrictJSON(body, &tg); d != nil {
			return
		}
		positions := bodyPositions(body)
		lines := bytes.Count(body, []byte("\n")) + 1
		bad := false
		tg.check("", func(path, code, format string, args ...any) {
			bad = true
			if code == "" || code == CodeInvalid {
				t.Fatalf("%s: no specific code", path)
			}
			if p := lookupPos(positions, path); p.Line < 0 || p.Line > lines {
				t.Fatalf("%s: position %+v outside the body", path, p)
			}
		})
		if bad {
			return
		}
		again := tg
		again.check("", func(path, code, format string, args ...any) { t.Fatalf("accepted, then refused at %s", path) })
		if again != tg || (tg.IP == "" && tg.HetznerServerID == 0 && tg.OVHVPS == "") {
			t.Fatalf("not canonical: %+v then %+v", tg, again)
		}
		data, _ := json.Marshal(tg)
		var back EdgeTarget
		if d := decodeStrictJSON(data, &back); d != nil || back != tg {
			t.Fatalf("round trip: %s %+v", data, d)
		}
	})
}

// FuzzDecodeReport: a report body is decoded strictly into plan.Report;
// nothing panics, and an accepted report re-encodes to an accepted one.
func FuzzDecodeReport(f *testing.F) {
	rep, _ := json.Marshal(plan.Report{PlanVersion: 1, PlanDigest: "ab", Stage: "late", Result: "hardened",
		HostKeys: []plan.HostKey{{Type: "ssh-ed25519", Fingerprint: "SHA256:x"}}, SSH: plan.SSHState{Effective: map[string]string{"port": "2"}}})
	for _, s := range []string{string(rep), `{}`, `{"result":"hardened","unknown":1}`, `{"steps":[{"uptime_s":"x"}]}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r plan.Report
		if d := decodeStrictJSON(body, &r); d != nil {
			return
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 plan.Report
		if d := decodeStrictJSON(out, &r2); d != nil {
			t.Fatalf("re-encoded report refused: %+v", d)
		}
	})
}

// FuzzBodyPositions: positions never panic and stay inside the body (YAML
// counts a lone \r as a line break too).
func FuzzBodyPositions(f *testing.F) {
	for _, s := range []string{seedOrder, `{"a":{"b":[1,{"c":2}]}}`, "a: [1, 2]\nb: {c: d}\n", `[[[[[[]]]]]]`, "&a [*a]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		lines := bytes.Count(body, []byte("\n")) + bytes.Count(body, []byte("\r")) + 1
		for path, p := range bodyPositions(body) {
			if p.Line < 0 || p.Line > lines+1 {
				t.Fatalf("%s at line %d of a %d-line body", path, p.Line, lines)
			}
		}
	})
}

// FuzzVerifyReport: only the exact signed request verifies; any change
// to the id, headers or body is refused, and nothing panics.
func FuzzVerifyReport(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef", "nonce-0000000000000001", []byte(`{"result":"hardened"}`), "", "", "", "")
	f.Add("x", "short", []byte{}, "1", "n", "v1=00", "y")
	f.Add("0123456789abcdef0123456789abcdef", "nonce-0000000000000001", []byte(`{}`), "+1764633600", "nonce-0000000000000001", "V1=", "")
	f.Fuzz(func(t *testing.T, id, nonce string, body []byte, ts, nonce2, sig, id2 string) {
		key := bytes.Repeat([]byte{7}, ReportKeySize)
		now := time.Unix(1764633600, 0)
		sr, err := SignReport(key, id, now, nonce, body)
		if err != nil {
			return // an invalid nonce is refused at signing
		}
		if _, _, _, err := verifyReport(key, id, sr.Header(), body, now); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		h := sr.Header()
		if ts != "" {
			h.Set(HeaderTimestamp, ts)
		}
		if nonce2 != "" {
			h.Set(HeaderNonce, nonce2)
		}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		vid := id
		if id2 != "" {
			vid = id2
		}
		_, _, _, err = verifyReport(key, vid, h, body, now)
		same := vid == id && h.Get(HeaderNonce) == sr.Nonce && h.Get(HeaderSignature) == sr.Signature && sameTime(h, sr.Timestamp)
		if err == nil && !same {
			t.Fatalf("altered request verified: id %q ts %q nonce %q sig %q", vid, h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature))
		}
	})
}

func sameTime(h http.Header, ts string) bool {
	a, err1 := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	b, err2 := strconv.ParseInt(ts, 10, 64)
	return err1 == nil && err2 == nil && a == b && h.Get(HeaderTimestamp) == ts
}
