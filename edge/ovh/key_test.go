package ovh

import (
	"encoding/json"
	"fmt"
	"testing"

	"hardbake.dev/hardbake/edge"
)

// readForms are rules as GET …/rule/{sequence} may return them, with the
// create body each must compare equal to.
var readForms = []struct {
	read string
	want edge.OVHRule
}{
	{`{"sequence":0,"action":"permit","protocol":"tcp","source":"any","destinationPort":null,"sourcePort":null,"tcpOption":"established","fragments":false,"state":"ok"}`,
		edge.OVHRule{Action: "permit", Protocol: "tcp", TCPOption: &edge.OVHTCPOption{Option: "established"}}},
	{`{"sequence":4,"action":"permit","protocol":"tcp","source":"0.0.0.0/0","destinationPort":"eq 50022","state":"ok"}`,
		edge.OVHRule{Action: "permit", Protocol: "tcp", DestinationPort: 50022}},
	{`{"sequence":1,"action":"permit","protocol":"udp","sourcePort":"53","state":"ok"}`,
		edge.OVHRule{Action: "permit", Protocol: "udp", SourcePort: 53}},
	{`{"sequence":7,"action":"permit","protocol":"tcp","source":"198.51.100.0/24","destinationPort":"eq 9100","tcpOption":null,"state":"creationPending"}`,
		edge.OVHRule{Action: "permit", Protocol: "tcp", Source: "198.51.100.0/24", DestinationPort: 9100}},
	{`{"sequence":0,"action":"permit","protocol":"tcp","tcpOption":{"option":"established","fragments":true}}`,
		edge.OVHRule{Action: "permit", Protocol: "tcp", TCPOption: &edge.OVHTCPOption{Option: "established", Fragments: true}}},
	{`{"sequence":19,"action":"deny","protocol":"ipv4","source":"any"}`, edge.OVHRule{Action: "deny", Protocol: "ipv4"}},
}

func TestReadFormKey(t *testing.T) {
	for i, c := range readForms {
		var r rule
		if err := json.Unmarshal([]byte(c.read), &r); err != nil {
			t.Fatal(err)
		}
		if r.key() != wantKey(c.want) {
			t.Errorf("%d: read %+v, want %+v", i, r.key(), wantKey(c.want))
		}
	}
	// A range or a different port never matches a single wanted port.
	for _, read := range []string{
		`{"action":"permit","protocol":"tcp","destinationPort":"range 1000 2000"}`,
		`{"action":"permit","protocol":"tcp","destinationPort":"eq 50023"}`,
		`{"action":"permit","protocol":"tcp","source":"198.51.100.0/25","destinationPort":"eq 9100"}`,
	} {
		var r rule
		_ = json.Unmarshal([]byte(read), &r)
		for _, c := range readForms {
			if r.key() == wantKey(c.want) {
				t.Errorf("%s matched %+v", read, c.want)
			}
		}
	}
}

// FuzzReadForm: any JSON the API returns reads without a panic, and a rule
// read back in the form the create body produced compares equal to it.
func FuzzReadForm(f *testing.F) {
	for _, c := range readForms {
		f.Add([]byte(c.read))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r rule
		if json.Unmarshal(data, &r) != nil {
			return
		}
		k := r.key()
		// The key of a well-formed rule survives a trip through the create form.
		if k.DstPort < 0 || k.SrcPort < 0 || k.DstPort > 65535 || k.SrcPort > 65535 {
			return
		}
		w := edge.OVHRule{Action: k.Action, Protocol: k.Protocol, Source: k.Source, DestinationPort: k.DstPort, SourcePort: k.SrcPort}
		if k.TCPOption != "" || k.Fragments {
			w.TCPOption = &edge.OVHTCPOption{Option: k.TCPOption, Fragments: k.Fragments}
		}
		var back rule
		src := w.Source
		ports := func(p int) *string {
			if p == 0 {
				return nil
			}
			s := fmt.Sprintf("eq %d", p)
			return &s
		}
		back = rule{Action: w.Action, Protocol: w.Protocol, Source: &src, DestinationPort: ports(w.DestinationPort), SourcePort: ports(w.SourcePort)}
		if w.TCPOption != nil {
			back.TCPOption, _ = json.Marshal(w.TCPOption.Option)
			frag := w.TCPOption.Fragments
			back.Fragments = &frag
		}
		if back.key() != wantKey(w) {
			t.Errorf("round trip: %+v != %+v", back.key(), wantKey(w))
		}
	})
}
