package render

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"hardbake.dev/hardbake/templates"
)

// TestSpliceUserData: the user-data encodeUserData writes by splicing the
// launcher script and the plan argument into a document encoded with
// placeholders is the document yaml.v3 writes for the real values: for
// plan arguments of any length PlanArg makes, with and without an
// embedded agent's entry before the launcher, and when a profile value
// carries a placeholder (then nothing is spliced).
func TestSpliceUserData(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const header = "#cloud-config\n# test\n"
	doc := func(embed bool, script, arg string, pkgs ...string) (cloudConfig, []string) {
		launcher := []string{"sh", "-c", script, launcherName, "seed", "src", "sum", arg, "digest"}
		cc := cloudConfig{Packages: pkgs, Runcmd: [][]string{{"x"}}}
		if embed {
			cc.Bootcmd = append(cc.Bootcmd, "base64 -d > /x <<'E'\nAAAA\nE\n")
		}
		cc.Bootcmd = append(cc.Bootcmd, launcher)
		return cc, launcher
	}
	full := func(embed bool, arg string, pkgs ...string) []byte {
		t.Helper()
		cc, _ := doc(embed, templates.Bootcmd(), arg, pkgs...)
		var buf bytes.Buffer
		buf.WriteString(header)
		if err := marshalTo(&buf, cc); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	spliced := func(embed bool, arg string, pkgs ...string) []byte {
		t.Helper()
		cc, launcher := doc(embed, launcherScriptPlaceholder, planArgPlaceholder, pkgs...)
		out, err := encodeUserData(header, cc, launcher, arg)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Without a placeholder elsewhere, both are spliced (not encoded
	// after all, which would pass the comparisons below as well).
	script, err := launcherScriptYAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, embed := range []bool{false, true} {
		cc, _ := doc(embed, launcherScriptPlaceholder, planArgPlaceholder)
		var buf bytes.Buffer
		if err := marshalTo(&buf, cc); err != nil {
			t.Fatal(err)
		}
		out, ok := spliceOnce(buf.Bytes(), launcherScriptAt+launcherScriptPlaceholder+"\n", launcherScriptAt+string(script))
		if !ok {
			t.Fatalf("embed %v: the script's placeholder is not where expected:\n%s", embed, buf.Bytes())
		}
		if _, ok := splicePlainScalar(out, planArgPlaceholder, "gz:AAAA"); !ok {
			t.Fatalf("embed %v: the plan argument's placeholder is not alone:\n%s", embed, out)
		}
	}
	for _, n := range []int{0, 1, 2, 3, 57, 58, 1000, 40000} {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		arg, err := PlanArg(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, embed := range []bool{false, true} {
			if got, want := spliced(embed, arg), full(embed, arg); !bytes.Equal(got, want) {
				t.Fatalf("%d bytes, embed %v: spliced\n%s\nwant\n%s", n, embed, got, want)
			}
			for _, p := range []string{planArgPlaceholder, launcherScriptPlaceholder} {
				if got, want := spliced(embed, arg, p), full(embed, arg, p); !bytes.Equal(got, want) {
					t.Fatalf("%d bytes, embed %v, a package named %s: spliced\n%s\nwant\n%s", n, embed, p, got, want)
				}
			}
		}
	}
	for _, bad := range []string{"", "gz:", "AAAA", "gz:AA AA", "gz:AA\nAA", "gz:AA#AA", "gz:AA: AA"} {
		if _, ok := splicePlainScalar([]byte("- "+planArgPlaceholder+"\n"), planArgPlaceholder, bad); ok {
			t.Errorf("spliced %q, which is not gz: and base64", bad)
		}
	}
}
