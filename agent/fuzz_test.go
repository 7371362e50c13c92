package agent

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"hardbake.dev/hardbake/plan"
)

// checkPorts is what every firewall read-back must give, whatever the
// tool printed: ports within 1-65535, sorted by port then protocol, each
// once, never nil (the report says [] for "none").
func checkPorts(t *testing.T, what string, ps []plan.Port) {
	t.Helper()
	if ps == nil {
		t.Fatalf("%s: nil port list", what)
	}
	for i, p := range ps {
		if p.Port < 1 || p.Port > 65535 || p.Proto == "" {
			t.Fatalf("%s: bad port %+v", what, p)
		}
		if i > 0 {
			q := ps[i-1]
			if q.Port > p.Port || q.Port == p.Port && q.Proto >= p.Proto {
				t.Fatalf("%s: not sorted and unique: %+v", what, ps)
			}
		}
	}
}

// FuzzParseIptablesS: `iptables -S` output of any shape parses without a
// panic or a hang into sane ports, and a rule restricted to a source
// address never adds a port (the read-back must not overstate what is
// open to everyone).
func FuzzParseIptablesS(f *testing.F) {
	f.Add("-P INPUT DROP\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 50022 -j ACCEPT\n")
	f.Add("-P INPUT DROP\n-A INPUT -j svc\n-A svc -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW -j ACCEPT\n-A svc -j svc\n")
	f.Add("-P INPUT ACCEPT\n-A INPUT -s 10.0.0.0/8 -p udp --dport 53 -j ACCEPT\n-A INPUT -p tcp --dport 0,65536,-1,22 -j ACCEPT\n")
	f.Fuzz(func(t *testing.T, out string) {
		policy, ports := ParseIptablesS(out)
		checkPorts(t, "iptables", ports)
		if policy != strings.ToLower(policy) {
			t.Fatalf("policy %q not lower case", policy)
		}
		if p2, ports2 := ParseIptablesS(out); p2 != policy || !reflect.DeepEqual(ports2, ports) {
			t.Fatal("not deterministic")
		}
		_, more := ParseIptablesS(out + "\n-A INPUT -s 192.0.2.1/32 -p tcp --dport 4444 -j ACCEPT\n")
		if !reflect.DeepEqual(more, ports) && !slices.Contains(ports, plan.Port{Port: 4444, Proto: "tcp"}) {
			t.Fatalf("a source-restricted rule changed the open ports: %+v -> %+v", ports, more)
		}
	})
}

// FuzzParseNftJSON: any bytes as `nft -j list ruleset` output give an
// error or sane ports, without a panic or a hang (range expansion is
// bounded, chain jumps may loop).
func FuzzParseNftJSON(f *testing.F) {
	f.Add([]byte(fakeNftJSON(testPlan().Firewall.Nftables.Content)))
	f.Add([]byte(`{"nftables":[{"chain":{"family":"ip","table":"f","name":"in","hook":"input","policy":"drop"}},{"rule":{"family":"ip","table":"f","chain":"in","expr":[{"jump":{"target":"in"}}]}},{"rule":{"family":"ip","table":"f","chain":"in","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"range":[65530,65540]}}},{"accept":null}]}}]}`))
	f.Add([]byte(`{"nftables":[{"chain":{"family":"inet","table":"t","name":"c","hook":"input"}},{"rule":{"family":"inet","table":"t","chain":"c","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":{"range":[-9223372036854775808,100]}}},{"accept":null}]}}]}`))
	f.Add([]byte(`{"nftables":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseNftJSON(data)
		if err != nil {
			return
		}
		checkPorts(t, "nft v4", rs.V4)
		checkPorts(t, "nft v6", rs.V6)
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
	})
}

// FuzzEncodeReport: whatever strings and numbers a report carries (tool
// output, error text with control characters or invalid UTF-8, odd
// floats), the writer gives one valid JSON document that reads back as the
// same report (invalid UTF-8 aside, which becomes U+FFFD).
func FuzzEncodeReport(f *testing.F) {
	f.Add("ssh", "sshd -t: exit status 255: Bad configuration option: Bogus", "port", "50022", "SSH-2.0-OpenSSH_9.2p1", 12.5, 50022)
	f.Add("x\x00y", "\x1b[31mred\u2028\"\\</script>", "k\n", "\xff\xfe", "", math.NaN(), -1)
	f.Add("", "", "", "", "", math.Inf(1), 0)
	f.Add("a", "b", "c", "d", "e", 1e300, 65535)
	f.Fuzz(func(t *testing.T, name, msg, key, val, banner string, uptime float64, port int) {
		in := plan.Report{
			PlanVersion: plan.Version, PlanDigest: name, Stage: StageLate, Result: plan.ResultFailed,
			Steps:    []plan.Step{{Name: name, Stage: StageLate, Status: plan.StatusFailed, Error: msg, Uptime: uptime}},
			SSH:      plan.SSHState{Port: port, Effective: map[string]string{key: val}, Banner: banner},
			Firewall: plan.FirewallState{AllowedV4: []plan.Port{{Port: port, Proto: val}}},
			Fail2ban: plan.Fail2banState{Jails: map[string]string{val: key}},
			Admin:    plan.AdminState{User: key, Shell: val},
			HostKeys: []plan.HostKey{{Type: key, Fingerprint: msg}},
		}
		data := EncodeReport(&in)
		if !json.Valid(data) || !bytes.HasSuffix(data, []byte("}\n")) {
			t.Fatalf("not one JSON document: %q", data)
		}
		var out plan.Report
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil || dec.More() {
			t.Fatalf("%v: %q", err, data)
		}
		if math.IsNaN(uptime) || math.IsInf(uptime, 0) {
			in.Steps[0].Uptime = 0
		}
		for _, s := range []string{name, msg, key, val, banner} {
			if !utf8.ValidString(s) {
				return // encoding/json wrote U+FFFD for the invalid bytes
			}
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip differs:\n%+v\n%+v", in, out)
		}
		// The summary is one console line without control characters,
		// whatever the error text carried.
		if line := Summary(&out); strings.ContainsFunc(line, isControl) {
			t.Fatalf("summary %q", line)
		}
	})
}
