package render

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// TestSplicePlanArg: splicing a plan argument into user-data encoded
// with the placeholder gives the bytes yaml.v3 writes for the argument
// itself, for arguments of any length and content PlanArg can produce,
// and refuses (so the caller encodes the real argument) when the
// placeholder is not alone in the document.
func TestSplicePlanArg(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	encode := func(arg string, extra ...string) []byte {
		t.Helper()
		cc := cloudConfig{
			Bootcmd:  []any{[]string{"sh", "-c", "echo 1\necho 2\n", launcherName, "seed", "src", "sum", arg, "digest"}},
			Packages: extra,
		}
		var buf bytes.Buffer
		if err := marshalTo(&buf, cc); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, n := range []int{1, 2, 3, 4, 5, 57, 58, 1000, 40000} {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		arg := planArgPrefix + base64.StdEncoding.EncodeToString(raw)
		got, ok := splicePlainScalar(encode(planArgPlaceholder), planArgPlaceholder, arg)
		if !ok || !bytes.Equal(got, encode(arg)) {
			t.Fatalf("%d bytes: spliced %v\n%s\nwant\n%s", n, ok, got, encode(arg))
		}
		// A plan argument PlanArg made really is one.
		if pa, err := PlanArg(raw); err != nil || !bytes.Equal(mustSplice(t, encode(planArgPlaceholder), pa), encode(pa)) {
			t.Fatalf("%d bytes: PlanArg %v", n, err)
		}
	}
	doc := encode(planArgPlaceholder, planArgPlaceholder)
	if _, ok := splicePlainScalar(doc, planArgPlaceholder, "gz:AAAA"); ok {
		t.Fatal("spliced into a document that holds the placeholder twice")
	}
	for _, bad := range []string{"", "gz:", "AAAA", "gz:AA AA", "gz:AA\nAA", "gz:AA#AA", "gz:AA: AA"} {
		if _, ok := splicePlainScalar(encode(planArgPlaceholder), planArgPlaceholder, bad); ok {
			t.Errorf("spliced %q, which is not gz: and base64", bad)
		}
	}
}

func mustSplice(t *testing.T, doc []byte, arg string) []byte {
	t.Helper()
	out, ok := splicePlainScalar(doc, planArgPlaceholder, arg)
	if !ok {
		t.Fatalf("cannot splice %.20q…", arg)
	}
	return out
}
