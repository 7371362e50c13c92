package plan

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestReportRoundTrip(t *testing.T) {
	in := Report{
		PlanVersion: Version, PlanDigest: "ab", Stage: "late", Result: ResultHardened,
		Steps:    []Step{{Name: "ssh", Stage: "early", Status: StatusApplied, Uptime: 3.5}},
		SSH:      SSHState{Activation: "service", Port: 50022, Effective: map[string]string{"port": "50022"}},
		Firewall: FirewallState{Backend: "nftables", InputPolicy: "drop", AllowedV4: []Port{{Port: 50022, Proto: "tcp"}}},
		Fail2ban: Fail2banState{State: "ok", Jails: map[string]string{"sshd": "50022"}},
		HostKeys: []HostKey{{Type: "ssh-ed25519", Fingerprint: "SHA256:x"}},
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Report
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("%v\n%+v\n%+v", err, in, out)
	}
}
