package plan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestStrictJSON(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"a":1,"b":[{"a":1},{"a":2}]}`, ""},
		{` {"a":{"b":{}}} ` + "\n", ""},
		{`[1,"x",null,true]`, ""},
		{`{"a":1,"a":1}`, `$: duplicate key "a"`},
		{`{"a":1,"A":2}`, `$: duplicate key "A"`},
		{`{"k":1,"\u212a":2}`, "$: duplicate key \"\u212a\""}, // KELVIN SIGN folds to k, as encoding/json matches it
		{`{"x":[{"y":{"z":1,"z":2}}]}`, `$.x[0].y: duplicate key "z"`},
		{`{} {}`, "trailing data"},
		{`{"a":1}x`, "trailing data"},
		{`{"a":}`, "invalid character"},
		{``, "EOF"},
	} {
		err := StrictJSON([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
		}
	}
}

// FuzzStrictJSON: StrictJSON accepts only valid JSON, and every document
// encoding/json writes (which has no duplicate keys) passes it.
func FuzzStrictJSON(f *testing.F) {
	f.Add([]byte(`{"version":1,"ssh":{"port":22}}`))
	f.Add([]byte(`{"a":1,"A":2}`))
	f.Add([]byte(`[{"x":[]},{"x":{}}] `))
	f.Fuzz(func(t *testing.T, data []byte) {
		if StrictJSON(data) == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := StrictJSON(again); err != nil && !strings.Contains(err.Error(), "duplicate key") {
			t.Fatalf("refused encoding/json's own output %q: %v", again, err)
		}
	})
}
