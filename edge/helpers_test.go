package edge_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/fromconfig"
	"hardbake.dev/hardbake/render"
	"hardbake.dev/hardbake/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var fakeAgent = render.NewAgent(render.AgentSeed, "amd64", []byte("hardbake-firstboot test binary"), "")

// compiled is one machine as the CLI would see it: inputs and render's result.
type compiled struct {
	profile *config.Profile
	machine *config.Machine
	src     *config.Source
	res     *render.Result
}

func loadProfile(t testing.TB, ref string) *config.Profile {
	t.Helper()
	data, ok := templates.Profile(ref)
	if !ok {
		var err error
		if data, err = os.ReadFile(filepath.Join("..", "examples", ref)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := config.DecodeProfile(ref, data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// compileOrder renders orderData (YAML or JSON) with a profile that is a
// built-in name, a path under examples/, or YAML text.
func compileOrder(t testing.TB, p *config.Profile, orderName string, orderData []byte) compiled {
	t.Helper()
	o, src, err := config.DecodeOrder(orderName, orderData)
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.Resolve(p, src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Compile(p, m, fakeAgent, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return compiled{p, m, src, res}
}

func compileExample(t testing.TB, profileRef, orderFile string) compiled {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", orderFile))
	if err != nil {
		t.Fatal(err)
	}
	return compileOrder(t, loadProfile(t, profileRef), orderFile, data)
}

func profileYAML(t testing.TB, name, yaml string) *config.Profile {
	t.Helper()
	p, err := config.DecodeProfile(name, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (c compiled) input(t testing.TB) *edge.Input {
	t.Helper()
	in, err := fromconfig.Input(c.profile, c.machine, c.res.Plan)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// checkGolden compares got with testdata/golden/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./edge -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file (go test ./edge -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first differing lines with three lines of context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	for j := max(0, i-3); j < i; j++ {
		fmt.Fprintf(&b, "  %4d   %s\n", j+1, w[j])
	}
	for j := i; j < min(len(w), i+5); j++ {
		fmt.Fprintf(&b, "- %4d   %s\n", j+1, w[j])
	}
	for j := i; j < min(len(g), i+5); j++ {
		fmt.Fprintf(&b, "+ %4d   %s\n", j+1, g[j])
	}
	fmt.Fprintf(&b, "(want %d lines, got %d)", len(w), len(g))
	return b.String()
}
