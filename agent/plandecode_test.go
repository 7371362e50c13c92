package agent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

// DecodePlan must agree with render.DecodePlan (encoding/json) on every
// plan it accepts.
func TestDecodePlanMatchesRender(t *testing.T) {
	full := testPlan()
	minimal := &plan.Plan{Version: 1, SSH: plan.SSH{Port: 2222}}
	empties := testPlan()
	empties.SSH.Expect = map[string]string{}
	empties.Updates.Files = []plan.File{}
	for _, p := range []*plan.Plan{full, minimal, empties} {
		data, err := render.EncodePlan(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := render.DecodePlan(data, render.PlanDigest(data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePlan(data)
		if err != nil {
			t.Fatalf("DecodePlan: %v", err)
		}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, p) {
			t.Errorf("DecodePlan differs:\n%+v\n%+v", got, want)
		}
	}
}

func TestDecodePlanRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"version":1,"ssh":{"port":22},"extra":1}`, `unknown field "extra"`},
		{`{"version":1,"ssh":{"port":"22"}}`, "ssh.port of type int"},
		{`{"version":1,"ssh":{"port":0}}`, "out of range"},
		{`{"version":2,"ssh":{"port":22}}`, "version 2"},
		{`{"version":1,"ssh":{"port":22,"drop_in":{"mode":-1}}}`, "ssh.drop_in.mode"},
		{`{"version":1,"ssh":{"port":22}} x`, "trailing data"},
		{`{"version":1,"ssh":{"port":22}}{}`, "trailing data"},
		// The fuzzer's find: the first of two keys had the wrong type.
		{`{"version":"1","version":1,"ssh":{"port":22}}`, `$: duplicate key "version"`},
		{`{"version":1,"ssh":{"port":22,"port":2222}}`, `$.ssh: duplicate key "port"`},
		{`{"version":1,"ssh":{"port":22},"SSH":{"port":2222}}`, `duplicate key "SSH"`},
		{`{"version":1,"ssh":{"port":22,"expect":{"a":"1","a":"2"}}}`, `$.ssh.expect: duplicate key "a"`},
		{`{"version":1,"ssh":{"port":22},"firewall":{"allow":[{"port":1,"port":2}]}}`, `$.firewall.allow[0]: duplicate key "port"`},
	} {
		_, err := DecodePlan([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.want)
		}
		// The generator's decoder refuses the same documents.
		if _, rerr := render.DecodePlan([]byte(tc.in), ""); rerr == nil || rerr.Error() != err.Error() {
			t.Errorf("%s: render.DecodePlan says %v, the agent %v", tc.in, rerr, err)
		}
	}
	if _, err := render.DecodePlan([]byte(`{}`), strings.Repeat("a", 64)); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("render digest: %v", err)
	}
}

// FuzzDecodePlan holds the agent's decoder, the generator's and plain
// encoding/json together: whatever the agent accepts, render accepts with
// the same value, and encoding/json reads the same value too (so a
// document with one meaning to the strict decoder has no second meaning
// to a lenient reader). testdata/fuzz/FuzzDecodePlan keeps the inputs that
// once split them (duplicate keys whose first value had the wrong type).
func FuzzDecodePlan(f *testing.F) {
	data, _ := render.EncodePlan(testPlan())
	f.Add(data)
	f.Add([]byte(`{"version":1,"ssh":{"port":22},"firewall":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodePlan(data)
		want, rerr := render.DecodePlan(data, "")
		if (err == nil) != (rerr == nil) {
			t.Fatalf("agent says %v, render says %v for %q", err, rerr, data)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("values differ for %q:\n%+v\n%+v", data, got, want)
		}
		var lenient plan.Plan
		if err := json.Unmarshal(data, &lenient); err != nil {
			t.Fatalf("encoding/json rejects what the agent accepts (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, &lenient) {
			t.Fatalf("encoding/json reads %q differently:\n%+v\n%+v", data, got, &lenient)
		}
	})
}

func TestParseSHA256Sum(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{hex + "  /var/lib/hardbake/plan.json\n", hex, true},
		{`\` + hex + `  /back\\slash` + "\n", hex, true},
		{hex + " *binary\n", hex, true},
		{strings.ToUpper(hex) + "  x\n", "", false},
		{hex[:63] + "  x\n", "", false},
		{"", "", false},
		{"sha256sum: x: No such file or directory\n", "", false},
	} {
		got, ok := ParseSHA256Sum(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseKeygenFingerprint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"256 SHA256:Ht3kZrN1OeK2gtf7Ugk2vJ8rBEmFxg8+2XnbmS6JqOM root@x (ED25519)\n", "SHA256:Ht3kZrN1OeK2gtf7Ugk2vJ8rBEmFxg8+2XnbmS6JqOM"},
		{"3072 SHA256:abc no comment (RSA)\n256 SHA256:second x (ED25519)\n", "SHA256:abc"},
		{"256 MD5:aa:bb root@x (ED25519)\n", ""},
		{"256 SHA256: root@x (ED25519)\n", ""},
		{"x SHA256:abc root@x (ED25519)\n", ""},
		{"/etc/ssh/k.pub is not a public key file.\n", ""},
		{"", ""},
	} {
		got, ok := ParseKeygenFingerprint(tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%q: %q %v, want %q", tc.in, got, ok, tc.want)
		}
	}
}
