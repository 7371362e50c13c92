package render_test

import (
	"bytes"
	"strings"
	"testing"

	"hardbake.dev/hardbake/render"
)

// FuzzPlanFromArg: any launcher argument decodes to a plan within one
// argument's size or to an error, never a panic; and every plan encoded
// by PlanArg comes back byte for byte.
func FuzzPlanFromArg(f *testing.F) {
	for _, s := range []string{`{"version":1}`, "gz:", "gz:H4sIAAAAAAAA/w==", "gz:!!", "", "[]"} {
		f.Add(s)
	}
	if arg, err := render.PlanArg([]byte(`{"version":1,"profile":"strict"}`)); err == nil {
		f.Add(arg)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data, err := render.PlanFromArg(s)
		if err == nil && len(data) > 128*1024 {
			t.Fatalf("decoded %d bytes, over one argument", len(data))
		}
		if strings.HasPrefix(s, "gz:") {
			return
		}
		arg, err := render.PlanArg([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		back, err := render.PlanFromArg(arg)
		if err != nil || !bytes.Equal(back, []byte(s)) {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
	})
}
